// The emotion centre: trend and distribution over a chosen range, the history
// list (open, delete one or all), export, and sharing with counsellors. The
// same view, read-only, is the counsellor's page of one client (user_id set).

import { api } from "../api.js";
import { distributionChart, scoreBars, trendChart } from "../charts.js";
import {
  busy,
  confirmDialog,
  errorBox,
  field,
  formatDateTime,
  formMessage,
  h,
  loading,
  percent,
  saveBlob,
  setFieldError,
  showFormMessage,
  clearFieldErrors,
} from "../dom.js";
import { EXPRESSIONS, dominantOf, expressionOf, SOURCES, sourceLabel } from "../expressions.js";

const PAGE_SIZE = 20;
const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

/** "YYYY-MM-DD" of a Date in local time (what <input type=date> uses). */
function isoDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Local midnight of an "YYYY-MM-DD", plus `addDays`, as RFC 3339. */
function dayStart(value, addDays = 0) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d + addDays).toISOString();
}

/**
 * Render the centre. options.client = {user_id, username} for a counsellor's
 * read-only view of a client; otherwise the caller's own centre.
 */
export function renderCentre(main, _params, ctx, options = {}) {
  const client = options.client || null;
  const ownerQuery = client ? { user_id: client.user_id } : {};
  const today = new Date();
  const monthAgo = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 29);
  const range = { from: isoDay(monthAgo), to: isoDay(today) };

  const title = client ? `Client: ${client.username || client.user_id}` : "Emotion centre";
  const section = h(
    "section",
    { class: "centre" },
    client ? h("p", {}, h("a", { href: "#/clients" }, "← All clients")) : null,
    h("h1", { tabindex: "-1" }, title),
    h(
      "p",
      { class: "lead" },
      client
        ? "Read-only view of the apparent expressions this client chose to share with you. Each view is logged for the client."
        : "Your past analyses: apparent facial expressions as estimated by the model, not a diagnosis.",
    ),
  );
  main.append(section);

  // --- range picker
  const from = field({ id: "range-from", label: "From", type: "date", attrs: { value: range.from, max: range.to } });
  const to = field({ id: "range-to", label: "To", type: "date", attrs: { value: range.to, max: range.to } });
  const apply = h("button", { type: "submit" }, "Show");
  const rangeForm = h(
    "form",
    { class: "range-form", "aria-label": "Time range" },
    from,
    to,
    h("div", { class: "field field-button" }, apply),
  );
  rangeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    clearFieldErrors(rangeForm);
    if (!from.control.value || !to.control.value || from.control.value > to.control.value) {
      setFieldError(to.control, "Choose a start date on or before the end date.");
      to.control.focus();
      return;
    }
    range.from = from.control.value;
    range.to = to.control.value;
    loadSummary();
    list.reload();
  });

  const trendBox = h("div", { class: "chart-box" });
  const distributionBox = h("div", { class: "chart-box" });
  section.append(
    h(
      "div",
      { class: "card" },
      h("h2", {}, "Trend and distribution"),
      rangeForm,
      h("p", { class: "hint" }, `Days are counted in your time zone (${TIME_ZONE}).`),
      h(
        "div",
        { class: "two-col" },
        h("div", {}, h("h3", {}, "Expressions per day"), trendBox),
        h("div", {}, h("h3", {}, "Distribution"), distributionBox),
      ),
    ),
  );

  const rangeQuery = () => ({
    start_time: dayStart(range.from),
    end_time: dayStart(range.to, 1),
  });

  async function loadSummary() {
    trendBox.replaceChildren(loading("Loading the trend…"));
    distributionBox.replaceChildren(loading());
    try {
      const summary = await api.get("/api/v1/summary", {
        ...rangeQuery(),
        time_zone: TIME_ZONE,
        bucket_size: "BUCKET_SIZE_DAY",
        ...ownerQuery,
      });
      trendBox.replaceChildren(trendChart(summary.trend || [], { from: range.from, to: range.to }));
      distributionBox.replaceChildren(distributionChart(summary));
    } catch (error) {
      trendBox.replaceChildren(errorBox(error, loadSummary));
      distributionBox.replaceChildren();
    }
  }

  // --- history list
  // After a deletion both the list and the charts change.
  const list = historyList({ ctx, client, ownerQuery, rangeQuery, onChanged: () => loadSummary() });
  section.append(list.el);

  if (!client) {
    section.append(exportCard(ctx), sharingCard(ctx));
  }
  loadSummary();
  list.reload();
}

function historyList({ ctx, client, ownerQuery, rangeQuery, onChanged }) {
  const source = field({
    id: "filter-source",
    label: "Source",
    options: [["", "Any"], ...Object.entries(SOURCES).map(([key, s]) => [key, s.label])],
  });
  const dominant = field({
    id: "filter-expression",
    label: "Expression",
    options: [["", "Any"], ...EXPRESSIONS.map((e) => [e.enum, `${e.emoji} ${e.label}`])],
  });
  for (const select of [source.control, dominant.control]) select.addEventListener("change", () => reload());
  const items = h("ul", { class: "history-list", id: "history-list", "aria-label": "Analyses" });
  // Focus lands here after a deletion, since the focused button is gone.
  const heading = h("h2", { tabindex: "-1" }, "History");
  const footer = h("div", { class: "list-footer" });
  const deleteAll = client
    ? null
    : h("button", { type: "button", class: "danger secondary", id: "delete-all" }, "Delete all…");
  const el = h(
    "div",
    { class: "card" },
    h("div", { class: "card-head" }, heading, deleteAll),
    h("div", { class: "filters" }, source, dominant),
    items,
    footer,
  );
  let nextToken = "";

  async function loadPage(reset) {
    if (reset) {
      items.replaceChildren();
      nextToken = "";
    }
    footer.replaceChildren(loading("Loading analyses…"));
    items.setAttribute("aria-busy", "true");
    try {
      const reply = await api.get("/api/v1/analyses", {
        page_size: PAGE_SIZE,
        page_token: nextToken,
        source: source.control.value,
        dominant: dominant.control.value,
        ...rangeQuery(),
        ...ownerQuery,
      });
      for (const analysis of reply.analyses || []) {
        items.append(
          historyItem(analysis, client, ctx, () => {
            heading.focus();
            onChanged();
            reload();
          }),
        );
      }
      nextToken = reply.next_page_token || "";
      footer.replaceChildren();
      if (!items.children.length) {
        footer.append(
          h(
            "p",
            { class: "empty" },
            client ? "No analyses in this range." : "No analyses in this range yet. ",
            client ? null : h("a", { href: "#/recognise" }, "Analyse a photo"),
          ),
        );
      }
      if (nextToken) {
        const more = h("button", { type: "button", class: "secondary" }, "Load more");
        more.addEventListener("click", () => loadPage(false));
        footer.append(more);
      }
    } catch (error) {
      footer.replaceChildren(errorBox(error, () => loadPage(reset)));
    } finally {
      items.removeAttribute("aria-busy");
    }
  }
  const reload = () => loadPage(true);

  deleteAll?.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: "Delete all analyses?",
      text: "This removes your whole history, in every time range. It cannot be undone.",
      confirmLabel: "Delete all",
    });
    if (!ok) return;
    try {
      const reply = await busy(deleteAll, "Deleting…", () => api.delete("/api/v1/analyses"));
      ctx.announce(`Deleted ${reply.deleted_analyses || 0} analyses.`, "success");
      ctx.refresh();
    } catch (error) {
      ctx.announce(error.message, "error");
    }
  });
  return { el, reload };
}

function historyItem(analysis, client, ctx, onDeleted) {
  const expression = expressionOf(analysis.dominant);
  const href = client ? `#/clients/${client.user_id}/${analysis.id}` : `#/history/${analysis.id}`;
  const faces = (analysis.faces || []).length;
  const row = h(
    "li",
    { class: "history-item", dataset: { analysisId: analysis.id } },
    h(
      "a",
      { href, class: "history-link" },
      h("span", { class: "item-emoji", "aria-hidden": "true" }, expression?.emoji || "∅"),
      h(
        "span",
        { class: "item-main" },
        h("span", { class: "item-title" }, expression ? expression.label : "No face found"),
        h(
          "span",
          { class: "item-meta" },
          h("time", { datetime: analysis.captured_at }, formatDateTime(analysis.captured_at)),
          ` · ${sourceLabel(analysis.source)} · ${faces} face${faces === 1 ? "" : "s"}`,
        ),
      ),
    ),
  );
  if (!client) {
    const remove = h(
      "button",
      {
        type: "button",
        class: "icon-button",
        "aria-label": `Delete the analysis of ${formatDateTime(analysis.captured_at)}`,
      },
      "🗑",
    );
    remove.addEventListener("click", async () => {
      if (!(await confirmDelete(analysis))) return;
      try {
        await busy(remove, "…", () => api.delete(`/api/v1/analyses/${encodeURIComponent(analysis.id)}`));
        row.remove();
        ctx.announce("Analysis deleted.", "success");
        onDeleted();
      } catch (error) {
        ctx.announce(error.message, "error");
      }
    });
    row.append(remove);
  }
  return row;
}

function confirmDelete(analysis) {
  return confirmDialog({
    title: "Delete this analysis?",
    text: `The analysis of ${formatDateTime(analysis.captured_at)} will be removed for good.`,
    confirmLabel: "Delete",
  });
}

function exportCard(ctx) {
  const buttons = [
    ["csv", "Download CSV"],
    ["json", "Download JSON"],
  ].map(([format, label]) => {
    const button = h("button", { type: "button", class: "secondary", id: `export-${format}` }, label);
    button.addEventListener("click", async () => {
      try {
        const file = await busy(button, "Preparing…", () => api.download("/api/v1/export", { format }));
        saveBlob(file.blob, file.filename || `emotion-history.${format}`);
        ctx.announce("Export downloaded.", "success");
      } catch (error) {
        ctx.announce(error.message, "error");
      }
    });
    return button;
  });
  return h(
    "div",
    { class: "card" },
    h("h2", {}, "Export"),
    h("p", { class: "hint" }, "Your whole history as a file, to keep or take elsewhere."),
    h("div", { class: "toolbar" }, buttons),
  );
}

function sharingCard(ctx) {
  const username = field({
    id: "share-username",
    label: "Counsellor's username",
    hint: "They will be able to read your history and trend until you revoke access.",
    attrs: { autocomplete: "off", required: true },
  });
  const message = formMessage();
  const submit = h("button", { type: "submit" }, "Share");
  const form = h("form", { class: "form", novalidate: true }, username, message, submit);
  const grantsBox = h("div", {});
  const auditBox = h("div", {});
  let grants = [];

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    showFormMessage(message, "");
    const name = username.control.value.trim();
    if (!name) {
      setFieldError(username.control, "Enter the counsellor's username.");
      return username.control.focus();
    }
    try {
      const reply = await busy(submit, "Sharing…", () =>
        api.post("/api/v1/shares", { counselor_username: name }),
      );
      username.control.value = "";
      showFormMessage(message, `Shared with ${reply.grant?.counselor_username || name}.`, "success");
      loadGrants();
    } catch (error) {
      setFieldError(username.control, error.fieldMessage);
      username.control.focus();
    }
  });

  async function loadGrants() {
    grantsBox.replaceChildren(loading("Loading who can see your history…"));
    try {
      grants = (await api.get("/api/v1/shares")).grants || [];
      const active = grants.filter((g) => !g.revoked_at);
      loadAudit();
      if (!grants.length) {
        grantsBox.replaceChildren(h("p", { class: "empty" }, "You have not shared your history with anyone."));
        return;
      }
      grantsBox.replaceChildren(
        h(
          "ul",
          { class: "plain-list", id: "grants" },
          grants.map((grant) => {
            const revoke = grant.revoked_at
              ? null
              : h("button", { type: "button", class: "secondary small" }, "Revoke");
            revoke?.addEventListener("click", async () => {
              const ok = await confirmDialog({
                title: "Revoke access?",
                text: `${grant.counselor_username} will no longer be able to read your history.`,
                confirmLabel: "Revoke",
              });
              if (!ok) return;
              try {
                await busy(revoke, "Revoking…", () =>
                  api.delete(`/api/v1/shares/${encodeURIComponent(grant.counselor_id)}`),
                );
                ctx.announce(`Access revoked for ${grant.counselor_username}.`, "success");
                loadGrants();
              } catch (error) {
                ctx.announce(error.message, "error");
              }
            });
            return h(
              "li",
              { class: grant.revoked_at ? "muted" : "" },
              h(
                "span",
                {},
                h("strong", {}, grant.counselor_username),
                grant.organization ? ` (${grant.organization})` : "",
                h(
                  "span",
                  { class: "item-meta" },
                  grant.revoked_at
                    ? ` · revoked ${formatDateTime(grant.revoked_at)}`
                    : ` · since ${formatDateTime(grant.granted_at)}`,
                ),
              ),
              revoke,
            );
          }),
        ),
      );
      if (!active.length) grantsBox.append(h("p", { class: "hint" }, "No counsellor has access now."));
    } catch (error) {
      grantsBox.replaceChildren(errorBox(error, loadGrants));
    }
  }

  async function loadAudit(pageToken = "", append = false) {
    if (!append) auditBox.replaceChildren(loading("Loading the access log…"));
    try {
      const reply = await api.get("/api/v1/audit", { page_size: 20, page_token: pageToken });
      const names = new Map(grants.map((g) => [g.counselor_id, g.counselor_username]));
      const events = reply.events || [];
      let listEl = auditBox.querySelector("ul");
      if (!append || !listEl) {
        auditBox.replaceChildren();
        if (!events.length) {
          auditBox.append(h("p", { class: "empty" }, "No counsellor has read your history yet."));
          return;
        }
        listEl = h("ul", { class: "plain-list", id: "audit-log" });
        auditBox.append(listEl);
      }
      auditBox.querySelector(".more")?.remove();
      for (const event of events) {
        listEl.append(
          h(
            "li",
            {},
            h("span", {}, h("strong", {}, names.get(event.counselor_id) || "A counsellor"), ` ${describe(event)}`),
            h("time", { class: "item-meta", datetime: event.occurred_at }, formatDateTime(event.occurred_at)),
          ),
        );
      }
      if (reply.next_page_token) {
        const more = h("button", { type: "button", class: "secondary more" }, "Older entries");
        more.addEventListener("click", () => loadAudit(reply.next_page_token, true));
        auditBox.append(more);
      }
    } catch (error) {
      auditBox.replaceChildren(errorBox(error, () => loadAudit()));
    }
  }
  loadGrants();

  return h(
    "div",
    { class: "card", id: "sharing" },
    h("h2", {}, "Share with a counsellor"),
    form,
    h("h3", {}, "Who can see your history"),
    grantsBox,
    h("h3", {}, "Access log"),
    h("p", { class: "hint" }, "Every time a counsellor reads your history it is listed here."),
    auditBox,
  );
}

function describe(event) {
  switch (event.action) {
    case "ListAnalyses":
      return "viewed your history list";
    case "GetAnalysis":
      return "opened one analysis";
    case "GetSummary":
      return "viewed your trend";
    default:
      return event.action || "read your history";
  }
}

/** One analysis: overall and per-face bars; delete for the owner. */
export function renderAnalysis(main, params, ctx, options = {}) {
  const client = options.client || null;
  const back = client ? `#/clients/${client.user_id}` : "#/history";
  const section = h(
    "section",
    { class: "narrow" },
    h("p", {}, h("a", { href: back }, client ? "← Client" : "← Emotion centre")),
    h("h1", { tabindex: "-1" }, "Analysis"),
  );
  const body = h("div", {}, loading("Loading the analysis…"));
  section.append(body);
  main.append(section);

  const load = async () => {
    body.replaceChildren(loading("Loading the analysis…"));
    try {
      const reply = await api.get(
        `/api/v1/analyses/${encodeURIComponent(params.id)}`,
        client ? { user_id: client.user_id } : {},
      );
      body.replaceChildren(analysisDetails(reply.analysis, client, ctx, back));
    } catch (error) {
      body.replaceChildren(
        errorBox(error.status === 404 ? new Error("This analysis does not exist (any more).") : error, load),
      );
    }
  };
  load();
}

function analysisDetails(analysis, client, ctx, back) {
  const faces = analysis.faces || [];
  const overall = expressionOf(analysis.dominant);
  const parts = [
    h(
      "p",
      { class: "summary-line" },
      h("span", { class: "big-emoji", "aria-hidden": "true" }, overall?.emoji || "∅"),
      h(
        "span",
        {},
        "Apparent expression: ",
        h("strong", {}, overall?.label || "no face found"),
        overall ? ` (${percent(analysis.overall?.[overall.key])})` : "",
      ),
    ),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Captured"),
      h("dd", {}, formatDateTime(analysis.captured_at)),
      h("dt", {}, "Source"),
      h("dd", {}, sourceLabel(analysis.source)),
      h("dt", {}, "Faces"),
      h("dd", {}, String(faces.length)),
      analysis.model_version ? [h("dt", {}, "Model"), h("dd", {}, analysis.model_version)] : null,
    ),
  ];
  if (analysis.thumbnail_jpeg) {
    const canvas = h("canvas", { class: "thumb", role: "img", "aria-label": "Face thumbnail" });
    const bytes = Uint8Array.from(atob(analysis.thumbnail_jpeg), (c) => c.charCodeAt(0));
    createImageBitmap(new Blob([bytes], { type: "image/jpeg" }))
      .then((bitmap) => {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
        canvas.getContext("2d").drawImage(bitmap, 0, 0);
      })
      .catch(() => canvas.remove());
    parts.push(canvas);
  }
  if (faces.length) {
    const bars = scoreBars({ caption: "Mean apparent expression scores", headline: false });
    bars.update(analysis.overall || faces[0].scores);
    parts.push(h("h2", {}, faces.length > 1 ? "All faces (mean)" : "Scores"), bars.el);
    if (faces.length > 1) {
      faces.forEach((face, i) => {
        const e = expressionOf(face.dominant) || dominantOf(face.scores);
        const faceBars = scoreBars({ caption: `Face ${i + 1} scores` });
        faceBars.update(face.scores);
        parts.push(
          h(
            "details",
            { class: "face-details" },
            h("summary", {}, `${e.emoji} Face ${i + 1}: ${e.label} ${percent(face.scores?.[e.key])}`),
            faceBars.el,
          ),
        );
      });
    }
  }
  if (!client) {
    const remove = h("button", { type: "button", class: "danger", id: "delete-analysis" }, "Delete this analysis");
    remove.addEventListener("click", async () => {
      if (!(await confirmDelete(analysis))) return;
      try {
        await busy(remove, "Deleting…", () => api.delete(`/api/v1/analyses/${encodeURIComponent(analysis.id)}`));
        ctx.announce("Analysis deleted.", "success");
        ctx.go(back);
      } catch (error) {
        ctx.announce(error.message, "error");
      }
    });
    parts.push(h("div", { class: "toolbar" }, remove));
  }
  return h("div", { class: "card" }, parts);
}
