// The counsellor's view: clients who granted access, and each client's trend
// and history through the same endpoints with user_id=<client>.

import { api } from "../api.js";
import { errorBox, formatDateTime, h, loading } from "../dom.js";
import { renderAnalysis, renderCentre } from "./history.js";

// Usernames of clients seen in the list, so a client page can show a name.
const knownClients = new Map();

export function renderClients(main, _params, ctx) {
  const section = h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Clients"),
    h(
      "p",
      { class: "lead" },
      "People who chose to share their apparent-expression history with you. " +
        "They can revoke access at any time and see each time you read it.",
    ),
  );
  const box = h("div", { class: "card" }, loading("Loading your clients…"));
  section.append(box);
  main.append(section);

  const load = async () => {
    box.replaceChildren(loading("Loading your clients…"));
    try {
      const clients = (await api.get("/api/v1/clients")).clients || [];
      if (!clients.length) {
        box.replaceChildren(h("p", { class: "empty" }, "No client has shared their history with you yet."));
        return;
      }
      box.replaceChildren(
        h(
          "ul",
          { class: "history-list", id: "client-list", "aria-label": "Clients" },
          clients.map((client) => {
            knownClients.set(client.user_id, client.username);
            const count = Number(client.analyses) || 0;
            return h(
              "li",
              { class: "history-item", dataset: { userId: client.user_id } },
              h(
                "a",
                { href: `#/clients/${client.user_id}`, class: "history-link" },
                h("span", { class: "item-emoji", "aria-hidden": "true" }, "👤"),
                h(
                  "span",
                  { class: "item-main" },
                  h("span", { class: "item-title client-name" }, client.username || client.user_id),
                  h(
                    "span",
                    { class: "item-meta" },
                    `${count} analys${count === 1 ? "is" : "es"}`,
                    client.last_analysis_at ? ` · latest ${formatDateTime(client.last_analysis_at)}` : "",
                    ` · shared since ${formatDateTime(client.granted_at)}`,
                  ),
                ),
              ),
            );
          }),
        ),
      );
    } catch (error) {
      box.replaceChildren(errorBox(error, load));
    }
  };
  load();
}

/** The client's name for headings: from the list seen before, else looked up (e.g. after a reload). */
async function clientOf(userId) {
  if (!knownClients.has(userId)) {
    try {
      for (const client of (await api.get("/api/v1/clients")).clients || []) {
        knownClients.set(client.user_id, client.username);
      }
    } catch {
      // The page itself will show the error when it loads the client's data.
    }
  }
  return { user_id: userId, username: knownClients.get(userId) || "" };
}

export function renderClient(main, params, ctx) {
  const view = h("div", {}, loading());
  main.append(view);
  clientOf(params.client).then((client) => {
    view.replaceChildren();
    renderCentre(view, params, ctx, { client });
    view.querySelector("h1")?.focus({ preventScroll: true });
  });
}

export function renderClientAnalysis(main, params, ctx) {
  const view = h("div", {}, loading());
  main.append(view);
  clientOf(params.client).then((client) => {
    view.replaceChildren();
    renderAnalysis(view, params, ctx, { client });
    view.querySelector("h1")?.focus({ preventScroll: true });
  });
}
