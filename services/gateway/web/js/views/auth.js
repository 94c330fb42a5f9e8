// Login and registration, with field-level validation that mirrors the auth
// service's rules and shows the server's field errors in the same places.

import { api, session } from "../api.js";
import {
  busy,
  clearFieldErrors,
  field,
  focusFirstInvalid,
  formMessage,
  h,
  markdown,
  setFieldError,
  showFormMessage,
  loading,
  errorBox,
} from "../dom.js";

const USERNAME_RULE = /^[A-Za-z0-9._-]{3,32}$/;
const PHONE_RULE = /^\+?[0-9][0-9 ().-]{4,24}$/;

export function validateUsername(value) {
  if (!value) return "Enter a username.";
  if (!USERNAME_RULE.test(value)) return "Use 3–32 letters, digits, dots, underscores or hyphens.";
  return "";
}

export function validatePassword(password, username = "") {
  if (!password) return "Enter a password.";
  if (password.length < 10) return "Use at least 10 characters.";
  if (username && password.toLowerCase() === username.toLowerCase()) return "The password must not be your username.";
  return "";
}

export function validatePhone(value, required = true, region = "") {
  if (!value) return required ? "Enter your phone number." : "";
  if (!PHONE_RULE.test(value)) return "Enter a phone number, e.g. +86 138 1234 5678.";
  if (!value.startsWith("+") && !region) return "Start with + and the country code, or choose the phone region.";
  return "";
}

// Regions for phone numbers written in national form; international (+...) needs none.
export const PHONE_REGIONS = [
  ["", "International (+…)"],
  ["CN", "China (+86)"],
  ["HK", "Hong Kong (+852)"],
  ["TW", "Taiwan (+886)"],
  ["SG", "Singapore (+65)"],
  ["JP", "Japan (+81)"],
  ["KR", "South Korea (+82)"],
  ["IN", "India (+91)"],
  ["GB", "United Kingdom (+44)"],
  ["DE", "Germany (+49)"],
  ["FR", "France (+33)"],
  ["US", "United States (+1)"],
  ["CA", "Canada (+1)"],
  ["AU", "Australia (+61)"],
];

// Server field names (proto) -> our control ids.
const SERVER_FIELDS = {
  username: "reg-username",
  password: "reg-password",
  phone: "reg-phone",
  phone_region: "reg-region",
  display_name: "reg-display-name",
  accepted_privacy_policy_version: "reg-accept",
  accepted_user_agreement_version: "reg-accept",
};

export function renderLogin(main, _params, ctx) {
  const username = field({ id: "login-username", label: "Username", attrs: { autocomplete: "username", required: true } });
  const password = field({
    id: "login-password",
    label: "Password",
    type: "password",
    attrs: { autocomplete: "current-password", required: true },
  });
  const message = formMessage();
  const submit = h("button", { type: "submit" }, "Log in");
  const form = h("form", { class: "card form", novalidate: true }, username, password, message, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    showFormMessage(message, "");
    const name = username.control.value.trim();
    const pass = password.control.value;
    if (!name) setFieldError(username.control, "Enter your username.");
    if (!pass) setFieldError(password.control, "Enter your password.");
    if (!name || !pass) return focusFirstInvalid(form);
    try {
      const reply = await busy(submit, "Logging in…", () =>
        api.post("/api/v1/auth/login", { username: name, password: pass }, { auth: false }),
      );
      session.store(reply.tokens);
      ctx.setUser(reply.user);
      ctx.go(ctx.homeRoute());
    } catch (error) {
      showFormMessage(message, error.message);
      password.control.focus();
    }
  });
  main.append(
    h(
      "section",
      { class: "narrow" },
      h("h1", { tabindex: "-1" }, "Log in"),
      ctx.flash ? h("p", { class: "notice" }, ctx.flash) : null,
      form,
      h("p", {}, "New here? ", h("a", { href: "#/register" }, "Create an account")),
      about(),
    ),
  );
}

function about() {
  return h(
    "p",
    { class: "hint" },
    "Emotion estimates the apparent facial expression in a photo. It is not a diagnosis of how anyone feels.",
  );
}

export function renderRegister(main, _params, ctx) {
  const section = h("section", { class: "narrow" }, h("h1", { tabindex: "-1" }, "Create an account"));
  main.append(section);
  const slot = h("div", {}, loading("Loading the agreements…"));
  section.append(slot);
  const load = async () => {
    slot.replaceChildren(loading("Loading the agreements…"));
    try {
      const agreements = await api.get("/api/v1/agreements", undefined, { auth: false });
      slot.replaceChildren(registerForm(agreements, ctx));
    } catch (error) {
      slot.replaceChildren(errorBox(error, load));
    }
  };
  load();
  section.append(h("p", {}, "Already registered? ", h("a", { href: "#/login" }, "Log in")));
}

/** A collapsible agreement text (shared with the personal centre). */
export function agreementDetails(agreement, id) {
  return h(
    "details",
    { class: "agreement", id },
    h("summary", {}, `${agreement.title || "Agreement"} (version ${agreement.version})`),
    h(
      "div",
      { class: "agreement-text", tabindex: "0", role: "region", "aria-label": agreement.title || "Agreement" },
      // The summary already shows the title: drop the text's own leading "# Title".
      markdown(String(agreement.text_markdown || "").replace(/^\s*#\s+[^\n]*\n/, "")),
    ),
  );
}

function registerForm(agreements, ctx) {
  const username = field({
    id: "reg-username",
    label: "Username",
    hint: "3–32 letters, digits, dots, underscores or hyphens.",
    attrs: { autocomplete: "username", required: true, maxlength: "32" },
  });
  const displayName = field({
    id: "reg-display-name",
    label: "Display name (optional)",
    attrs: { autocomplete: "name", maxlength: "64" },
  });
  const password = field({
    id: "reg-password",
    label: "Password",
    type: "password",
    hint: "At least 10 characters, not your username.",
    attrs: { autocomplete: "new-password", required: true },
  });
  const confirm = field({
    id: "reg-password2",
    label: "Repeat password",
    type: "password",
    attrs: { autocomplete: "new-password", required: true },
  });
  const phone = field({
    id: "reg-phone",
    label: "Phone number",
    type: "tel",
    hint: "International form (+86 138 1234 5678), or choose the region for a national number.",
    attrs: { autocomplete: "tel", required: true, inputmode: "tel" },
  });
  const region = field({ id: "reg-region", label: "Phone region", options: PHONE_REGIONS });
  const privacy = agreements.privacy_policy || {};
  const terms = agreements.user_agreement || {};
  const accept = field({
    id: "reg-accept",
    type: "checkbox",
    label: `I have read and accept the ${privacy.title || "privacy policy"} and the ${terms.title || "user agreement"}.`,
    attrs: { required: true },
  });
  const message = formMessage();
  const submit = h("button", { type: "submit" }, "Create account");
  const form = h(
    "form",
    { class: "card form", novalidate: true },
    username,
    displayName,
    password,
    confirm,
    phone,
    region,
    h(
      "div",
      { class: "agreements" },
      h("h2", {}, "Agreements"),
      agreementDetails(privacy, "reg-privacy-policy"),
      agreementDetails(terms, "reg-user-agreement"),
    ),
    accept,
    message,
    submit,
  );

  const checks = {
    username: () => validateUsername(username.control.value.trim()),
    password: () => validatePassword(password.control.value, username.control.value.trim()),
    confirm: () =>
      confirm.control.value !== password.control.value ? "The passwords do not match." : "",
    phone: () => validatePhone(phone.control.value.trim(), true, region.control.value),
    accept: () => (accept.control.checked ? "" : "Please accept the privacy policy and the user agreement."),
  };
  const controls = { username, password, confirm, phone, accept };
  // Validate a field when the user leaves it, and re-validate while fixing it, so a fixed error
  // disappears as you type (not on blur, where the layout shift would eat the next click).
  const recheck = (name) => {
    const control = controls[name].control;
    if (control.getAttribute("aria-invalid")) setFieldError(control, checks[name]());
  };
  for (const [name, wrapper] of Object.entries(controls)) {
    wrapper.control.addEventListener("blur", () => {
      const problem = checks[name]();
      if (problem && wrapper.control.type !== "checkbox") setFieldError(wrapper.control, problem);
    });
    wrapper.control.addEventListener("input", () => recheck(name));
    wrapper.control.addEventListener("change", () => recheck(name));
  }
  // Fields whose validity depends on another one.
  password.control.addEventListener("input", () => recheck("confirm"));
  username.control.addEventListener("input", () => recheck("password"));
  region.control.addEventListener("change", () => recheck("phone"));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    showFormMessage(message, "");
    let valid = true;
    for (const [name, wrapper] of Object.entries(controls)) {
      const problem = checks[name]();
      setFieldError(wrapper.control, problem);
      if (problem) valid = false;
    }
    if (!valid) {
      showFormMessage(message, "Please fix the highlighted fields.");
      return focusFirstInvalid(form);
    }
    const body = {
      username: username.control.value.trim(),
      password: password.control.value,
      phone: phone.control.value.trim(),
      phone_region: region.control.value,
      display_name: displayName.control.value.trim(),
      accepted_privacy_policy_version: privacy.version || "",
      accepted_user_agreement_version: terms.version || "",
    };
    try {
      await busy(submit, "Creating account…", async () => {
        await api.post("/api/v1/auth/register", body, { auth: false });
        const reply = await api.post(
          "/api/v1/auth/login",
          { username: body.username, password: body.password },
          { auth: false },
        );
        session.store(reply.tokens);
        ctx.setUser(reply.user);
      });
      ctx.announce("Welcome! Your account is ready.", "success");
      ctx.go(ctx.homeRoute());
    } catch (error) {
      const controlId = SERVER_FIELDS[error.field];
      const control = controlId && document.getElementById(controlId);
      if (control) {
        setFieldError(control, error.fieldMessage);
        control.focus();
      } else {
        showFormMessage(message, error.message);
      }
      if (error.code === "ALREADY_EXISTS" && !control) {
        setFieldError(username.control, error.fieldMessage);
        username.control.focus();
      }
    }
  });
  return form;
}
