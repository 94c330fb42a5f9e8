// The seven FER-2013 expressions in label order, as the API names them.
// Colours keep at least 3:1 contrast against the white card background.

export const EXPRESSIONS = [
  { key: "angry", enum: "EXPRESSION_ANGRY", label: "Angry", emoji: "😠", color: "#c62828" },
  { key: "disgust", enum: "EXPRESSION_DISGUST", label: "Disgusted", emoji: "🤢", color: "#4e7d1e" },
  { key: "fear", enum: "EXPRESSION_FEAR", label: "Fearful", emoji: "😨", color: "#7b1fa2" },
  { key: "happy", enum: "EXPRESSION_HAPPY", label: "Happy", emoji: "😀", color: "#a86400" },
  { key: "sad", enum: "EXPRESSION_SAD", label: "Sad", emoji: "😢", color: "#1565c0" },
  { key: "surprise", enum: "EXPRESSION_SURPRISE", label: "Surprised", emoji: "😲", color: "#00796b" },
  { key: "neutral", enum: "EXPRESSION_NEUTRAL", label: "Neutral", emoji: "😐", color: "#5f6368" },
];

const BY_ENUM = new Map(EXPRESSIONS.map((e) => [e.enum, e]));

/** The expression for an enum name ("EXPRESSION_HAPPY"); null when unspecified. */
export function expressionOf(enumName) {
  return BY_ENUM.get(enumName) || null;
}

/** The expression with the highest score in an ExpressionScores object. */
export function dominantOf(scores) {
  let best = null;
  for (const e of EXPRESSIONS) {
    if (!best || (scores?.[e.key] || 0) > (scores?.[best.key] || 0)) best = e;
  }
  return best;
}

export const SOURCES = {
  SOURCE_CAMERA: { label: "Camera", icon: "📷" },
  SOURCE_ALBUM: { label: "Album", icon: "🖼️" },
  SOURCE_LIVE: { label: "Live", icon: "🎥" },
};

export function sourceLabel(source) {
  return SOURCES[source]?.label || "Unknown";
}
