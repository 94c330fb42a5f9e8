// Small DOM helpers: element building (never innerHTML with data), the status
// live region, confirmation dialogs, form field errors and a safe Markdown
// subset for the agreement texts.

/**
 * Build an element: h("button", {class: "x", onclick: fn}, "text", child).
 * Attributes starting with "on" become event listeners (no inline handlers, CSP-safe).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : value);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Build an SVG element (attributes set verbatim). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

let statusTimer = 0;

/**
 * Announce a status message (aria-live) and show it briefly. kind: "info" | "error" | "success".
 * quiet: for screen readers only, when the page already shows the outcome.
 */
export function announce(message, kind = "info", { quiet = false } = {}) {
  const region = document.getElementById("status");
  region.textContent = "";
  region.className = `status status-${kind}${quiet ? " visually-hidden" : ""}`;
  // A fresh text node makes screen readers re-read an identical message.
  window.requestAnimationFrame(() => {
    region.textContent = message;
  });
  clearTimeout(statusTimer);
  if (kind !== "error") statusTimer = setTimeout(() => (region.textContent = ""), 6000);
}

export function clearStatus() {
  const region = document.getElementById("status");
  region.textContent = "";
}

/**
 * Ask for confirmation in the modal <dialog>. `extra` is an optional element
 * (e.g. a password field) placed in the dialog; `validate` may return an error
 * string to keep the dialog open. Resolves true when confirmed.
 */
export function confirmDialog({ title, text, confirmLabel = "Confirm", extra = null, validate = null }) {
  const dialog = document.getElementById("confirm-dialog");
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-text").textContent = text;
  dialog.querySelector("#confirm-ok").textContent = confirmLabel;
  const extraBox = dialog.querySelector("#confirm-extra");
  extraBox.replaceChildren(...(extra ? [extra] : []));
  const cancel = dialog.querySelector("#confirm-cancel");
  if (!cancel.dataset.wired) {
    // Only "Confirm" submits, so Enter in a field inside the dialog confirms.
    cancel.addEventListener("click", () => dialog.close("cancel"));
    cancel.dataset.wired = "1";
  }
  return new Promise((resolve) => {
    const ok = dialog.querySelector("#confirm-ok");
    const onOk = (event) => {
      const problem = validate ? validate() : "";
      if (problem) {
        event.preventDefault();
        return;
      }
    };
    ok.addEventListener("click", onOk);
    dialog.addEventListener(
      "close",
      () => {
        ok.removeEventListener("click", onOk);
        resolve(dialog.returnValue === "ok");
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    (dialog.querySelector("#confirm-extra input") || dialog.querySelector("#confirm-cancel")).focus();
  });
}

/**
 * A labelled form field with a hint and an error slot wired up with
 * aria-describedby. Returns the wrapper; the control is `.control`.
 */
export function field({ id, label, type = "text", name = id, hint = "", attrs = {}, options = null }) {
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint ? hintId : "", errorId].filter(Boolean).join(" ");
  let control;
  if (options) {
    control = h(
      "select",
      { id, name, "aria-describedby": describedBy, ...attrs },
      options.map(([value, text]) => h("option", { value }, text)),
    );
  } else if (type === "checkbox") {
    control = h("input", { id, name, type, "aria-describedby": describedBy, ...attrs });
    const wrapper = h(
      "div",
      { class: "field field-check" },
      control,
      h("label", { for: id }, label),
      hint ? h("p", { class: "hint", id: hintId }, hint) : null,
      h("p", { class: "field-error", id: errorId }),
    );
    wrapper.control = control;
    return wrapper;
  } else {
    control = h("input", { id, name, type, "aria-describedby": describedBy, ...attrs });
  }
  const wrapper = h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    control,
    h("p", { class: "field-error", id: errorId }),
  );
  wrapper.control = control;
  return wrapper;
}

/** Show (or with "" clear) the error of a field built by field(). */
export function setFieldError(control, message) {
  const slot = document.getElementById(`${control.id}-error`);
  if (slot) slot.textContent = message || "";
  if (message) control.setAttribute("aria-invalid", "true");
  else control.removeAttribute("aria-invalid");
}

/** Clear every field error inside `form`. */
export function clearFieldErrors(form) {
  for (const control of form.querySelectorAll("[aria-invalid]")) setFieldError(control, "");
  for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
}

/** Focus the first invalid control in `form`. */
export function focusFirstInvalid(form) {
  const first = form.querySelector('[aria-invalid="true"]');
  if (first) first.focus();
}

/** A form-level error/status paragraph (role=alert for errors). */
export function formMessage() {
  return h("p", { class: "form-message", "aria-live": "polite" });
}

export function showFormMessage(el, message, kind = "error") {
  el.textContent = message || "";
  el.className = `form-message ${message ? `form-message-${kind}` : ""}`;
}

/**
 * Run `task` with `button` disabled and labelled as busy; returns the task's result.
 * Every API call from a button goes through this, so each has a loading state.
 */
export async function busy(button, busyLabel, task) {
  const original = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = busyLabel;
  try {
    return await task();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = original;
  }
}

/** A loading placeholder for a section. */
export function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}

/** An error box with a retry button. */
export function errorBox(error, retry) {
  return h(
    "div",
    { class: "error-box", role: "alert" },
    h("p", {}, error.message || String(error)),
    retry ? h("button", { type: "button", class: "secondary", onclick: retry }, "Try again") : null,
  );
}

// --- Markdown (agreement texts): headings, paragraphs, lists, **bold**, *em*, `code`, links.

function inline(text) {
  const nodes = [];
  const pattern = /(\*\*([^*]+)\*\*|\*([^*]+)\*|`([^`]+)`|\[([^\]]+)\]\(([^)\s]+)\))/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) nodes.push(text.slice(last, match.index));
    if (match[2]) nodes.push(h("strong", {}, match[2]));
    else if (match[3]) nodes.push(h("em", {}, match[3]));
    else if (match[4]) nodes.push(h("code", {}, match[4]));
    else if (match[5]) {
      const href = /^(https?:|mailto:)/i.test(match[6]) ? match[6] : null;
      nodes.push(href ? h("a", { href, rel: "noopener noreferrer", target: "_blank" }, match[5]) : match[5]);
    }
    last = match.index + match[0].length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

/** Render a safe Markdown subset into a fragment (text only ever becomes text nodes). */
export function markdown(source) {
  const fragment = document.createDocumentFragment();
  let paragraph = [];
  let list = null;
  const flush = () => {
    if (paragraph.length) fragment.append(h("p", {}, inline(paragraph.join(" "))));
    paragraph = [];
  };
  for (const raw of String(source || "").split(/\r?\n/)) {
    const line = raw.trim();
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    const item = /^(?:[-*+]|\d+[.)])\s+(.*)$/.exec(line);
    if (!line) {
      flush();
      list = null;
    } else if (heading) {
      flush();
      list = null;
      // Agreement headings sit under the section's own h2/h3.
      const level = Math.min(6, heading[1].length + 2);
      fragment.append(h(`h${level}`, {}, inline(heading[2])));
    } else if (item) {
      flush();
      if (!list) {
        list = h(/^\d/.test(line) ? "ol" : "ul");
        fragment.append(list);
      }
      list.append(h("li", {}, inline(item[1])));
    } else {
      list = null;
      paragraph.push(line);
    }
  }
  flush();
  return fragment;
}

// --- Formatting

const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

export function formatDateTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "—" : dateTimeFormat.format(date);
}

export function formatDate(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "—" : dateFormat.format(date);
}

export function percent(value) {
  return `${Math.round((Number(value) || 0) * 100)}%`;
}

/** Save a Blob as a file. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, class: "visually-hidden" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
