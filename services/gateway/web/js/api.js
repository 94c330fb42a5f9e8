// HTTP client for the gateway's /api/v1: bearer tokens, one refresh on 401,
// and every failure turned into an ApiError carrying the server's
// {"error": {"code", "message", "field"}} body.

const ACCESS_KEY = "emotion.access_token";
const REFRESH_KEY = "emotion.refresh_token";

/** An API failure the UI can show: `message` is meant for people, `field` names a form field. */
export class ApiError extends Error {
  constructor(status, code, message, field = "", retryAfter = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    // Backends phrase field errors as "field: reason"; recover the field when the body lacks it.
    this.field = field || (/^([a-z][a-z0-9_]*): /.exec(message) || [])[1] || "";
    this.retryAfter = retryAfter;
  }

  /** The message for display next to its field: without the "field: " prefix, capitalised. */
  get fieldMessage() {
    let text = this.message;
    if (this.field && text.startsWith(`${this.field}: `)) text = text.slice(this.field.length + 2);
    return text.charAt(0).toUpperCase() + text.slice(1);
  }
}

// The access token lives in memory, mirrored to sessionStorage so a reload of
// the tab keeps the session; closing the tab ends it.
let accessToken = sessionStorage.getItem(ACCESS_KEY) || "";
let refreshToken = sessionStorage.getItem(REFRESH_KEY) || "";
let refreshing = null;
const sessionListeners = new Set();

export const session = {
  get accessToken() {
    return accessToken;
  },
  get refreshToken() {
    return refreshToken;
  },
  get loggedIn() {
    return Boolean(accessToken || refreshToken);
  },
  /** Store a TokenPair from login, refresh or a password change. */
  store(tokens) {
    accessToken = tokens.access_token || "";
    refreshToken = tokens.refresh_token || "";
    sessionStorage.setItem(ACCESS_KEY, accessToken);
    sessionStorage.setItem(REFRESH_KEY, refreshToken);
  },
  /** Forget the tokens; `reason` tells listeners why (e.g. "expired"). */
  clear(reason = "") {
    accessToken = "";
    refreshToken = "";
    sessionStorage.removeItem(ACCESS_KEY);
    sessionStorage.removeItem(REFRESH_KEY);
    for (const listener of sessionListeners) listener(reason);
  },
  onEnd(listener) {
    sessionListeners.add(listener);
  },
};

const FRIENDLY = {
  NETWORK: "Cannot reach the server. Check your connection and try again.",
  UNAVAILABLE: "The service is temporarily unavailable. Please try again shortly.",
  DEADLINE_EXCEEDED: "The server took too long to answer. Please try again.",
  INTERNAL: "Something went wrong on the server. Please try again.",
};

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = (body && body.error) || {};
  const retryAfter = Number(response.headers.get("Retry-After") || 0);
  let code = error.code || `HTTP_${response.status}`;
  if (response.status === 413) code = error.code || "PAYLOAD_TOO_LARGE";
  let message = error.message || FRIENDLY[code] || `Request failed (${response.status}).`;
  if (response.status === 413 && !error.message) message = "That file is too large.";
  if (response.status === 429 && retryAfter) message += ` Try again in ${retryAfter} s.`;
  return new ApiError(response.status, code, message, error.field || "", retryAfter);
}

function buildUrl(path, query) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  return url;
}

async function send(method, url, { json, form, auth }) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  if (auth && accessToken) headers.Authorization = `Bearer ${accessToken}`;
  try {
    return await fetch(url, { method, headers, body, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "NETWORK", FRIENDLY.NETWORK);
  }
}

/** Rotate the refresh token once, however many calls hit 401 at the same time. */
export function refreshSession() {
  if (!refreshing) {
    refreshing = (async () => {
      if (!refreshToken) return false;
      const response = await send("POST", buildUrl("/api/v1/auth/refresh"), {
        json: { refresh_token: refreshToken },
        auth: false,
      });
      if (!response.ok) return false;
      const reply = await response.json();
      session.store(reply.tokens);
      return true;
    })()
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

async function request(method, path, { query, json, form, auth = true } = {}) {
  const url = buildUrl(path, query);
  if (auth && !accessToken && refreshToken) await refreshSession();
  let response = await send(method, url, { json, form, auth });
  if (response.status === 401 && auth) {
    if (!(await refreshSession())) {
      session.clear("expired");
      throw await errorFrom(response);
    }
    // A 401 with a freshly refreshed token is not about the session (e.g. a
    // wrong password on re-authentication): report it, stay logged in.
    response = await send(method, url, { json, form, auth });
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function jsonOf(response) {
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

export const api = {
  get: async (path, query, options = {}) => jsonOf(await request("GET", path, { ...options, query })),
  post: async (path, json, options = {}) => jsonOf(await request("POST", path, { ...options, json })),
  patch: async (path, json) => jsonOf(await request("PATCH", path, { json })),
  delete: async (path) => jsonOf(await request("DELETE", path)),
  upload: async (path, form) => jsonOf(await request("POST", path, { form })),
  /** A file download: returns {blob, filename}. */
  async download(path, query) {
    const response = await request("GET", path, { query });
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
    return { blob: await response.blob(), filename: match ? decodeURIComponent(match[1]) : "" };
  },
  /** ws(s) URL of the live endpoint with the current access token. */
  liveUrl(query) {
    const url = buildUrl("/api/v1/live", { ...query, token: accessToken });
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  },
};

/** A random idempotency key for analyses. */
export function newRequestId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
