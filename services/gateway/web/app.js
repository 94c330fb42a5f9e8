// Entry point: session bootstrap, hash router, navigation and the service
// worker. Every view is a function (main, params, ctx) that fills <main> and
// may return a cleanup function (e.g. to stop the camera).

import { api, session } from "./js/api.js";
import { announce, clearStatus, h } from "./js/dom.js";
import { renderLogin, renderRegister } from "./js/views/auth.js";
import { renderClient, renderClientAnalysis, renderClients } from "./js/views/clients.js";
import { renderAnalysis, renderCentre } from "./js/views/history.js";
import { renderMe } from "./js/views/me.js";
import { renderRecognise } from "./js/views/recognise.js";

const COUNSELOR = "ROLE_COUNSELOR";

// [pattern, view, title, who may see it: "public" | "user" | "counselor" | "any"]
const ROUTES = [
  [/^login$/, renderLogin, "Log in", "public"],
  [/^register$/, renderRegister, "Create an account", "public"],
  [/^recognise$/, renderRecognise, "Recognise", "user"],
  [/^history$/, renderCentre, "Emotion centre", "user"],
  [/^history\/(?<id>[\w-]+)$/, renderAnalysis, "Analysis", "user"],
  [/^clients$/, renderClients, "Clients", "counselor"],
  [/^clients\/(?<client>[\w-]+)$/, renderClient, "Client", "counselor"],
  [/^clients\/(?<client>[\w-]+)\/(?<id>[\w-]+)$/, renderClientAnalysis, "Client analysis", "counselor"],
  [/^me$/, renderMe, "Personal centre", "any"],
];

const main = document.getElementById("main");
const nav = document.getElementById("app-nav");
let cleanup = null;
let flash = "";

const ctx = {
  user: null,
  get flash() {
    return flash;
  },
  setUser(user) {
    ctx.user = user;
    updateNav();
  },
  isCounselor() {
    return ctx.user?.role === COUNSELOR;
  },
  homeRoute() {
    return ctx.isCounselor() ? "#/clients" : "#/recognise";
  },
  go(hash) {
    if (window.location.hash === hash) render();
    else window.location.hash = hash;
  },
  /** Re-render the current route (e.g. after deleting everything). */
  refresh() {
    render();
  },
  announce,
  /** Leave for the login page with a message shown there. */
  flashLogin(message) {
    flash = message;
    ctx.go("#/login");
  },
  async logout() {
    const refreshToken = session.refreshToken;
    if (refreshToken) {
      // Best effort: the session ends locally even if the server can't be reached.
      await api.post("/api/v1/auth/logout", { refresh_token: refreshToken }, { auth: false }).catch(() => {});
    }
    session.clear("");
    ctx.setUser(null);
    ctx.flashLogin("You are logged out.");
  },
};

session.onEnd((reason) => {
  if (reason === "expired") {
    ctx.setUser(null);
    ctx.flashLogin("Your session has ended. Please log in again.");
  }
});

function updateNav() {
  nav.hidden = !ctx.user;
  for (const item of nav.querySelectorAll("li[data-role]")) {
    const role = item.dataset.role;
    item.hidden = role === "counselor" ? !ctx.isCounselor() : ctx.isCounselor();
  }
}

function markCurrent(name) {
  for (const link of nav.querySelectorAll("a[data-route]")) {
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function ensureUser() {
  if (ctx.user || !session.loggedIn) return;
  try {
    ctx.setUser((await api.get("/api/v1/profile")).user);
  } catch {
    // An expired session has already been cleared by the API client.
    if (session.loggedIn) throw new Error("Cannot load your profile.");
  }
}

async function render() {
  const path = window.location.hash.replace(/^#\/?/, "");
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  try {
    await ensureUser();
  } catch (error) {
    main.replaceChildren(
      h(
        "div",
        { class: "error-box", role: "alert" },
        h("p", {}, `${error.message} Check your connection.`),
        h("button", { type: "button", onclick: () => render() }, "Try again"),
      ),
    );
    return;
  }
  let match = null;
  let route = null;
  for (const candidate of ROUTES) {
    match = candidate[0].exec(path);
    if (match) {
      route = candidate;
      break;
    }
  }
  const loggedIn = Boolean(ctx.user);
  if (!route) return ctx.go(loggedIn ? ctx.homeRoute() : "#/login");
  const [, view, title, audience] = route;
  if (audience === "public" && loggedIn) return ctx.go(ctx.homeRoute());
  if (audience !== "public" && !loggedIn) return ctx.go("#/login");
  if (audience === "user" && ctx.isCounselor()) return ctx.go(ctx.homeRoute());
  if (audience === "counselor" && !ctx.isCounselor()) return ctx.go(ctx.homeRoute());

  document.title = `${title} · Emotion`;
  markCurrent(path.split("/")[0]);
  main.replaceChildren();
  if (path !== "login") clearStatus();
  cleanup = view(main, { ...(match.groups || {}) }, ctx) || null;
  if (path === "login") flash = "";
  // Move focus to the new page's heading so keyboard and screen-reader users start there.
  const heading = main.querySelector("h1");
  if (heading) {
    if (!heading.hasAttribute("tabindex")) heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

window.addEventListener("hashchange", render);
render();

if ("serviceWorker" in navigator && window.isSecureContext) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("sw.js").catch(() => {});
  });
}
