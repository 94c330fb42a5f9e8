// The personal centre: profile and phone, password change, the agreements,
// logging out and deleting the account.

import { api, session } from "../api.js";
import {
  busy,
  clearFieldErrors,
  confirmDialog,
  errorBox,
  field,
  focusFirstInvalid,
  formatDate,
  formMessage,
  h,
  loading,
  setFieldError,
  showFormMessage,
} from "../dom.js";
import { agreementDetails, PHONE_REGIONS, validatePassword, validatePhone } from "./auth.js";

const ROLE_NAMES = { ROLE_USER: "User", ROLE_COUNSELOR: "Counsellor" };

export function renderMe(main, _params, ctx) {
  const section = h("section", { class: "narrow" }, h("h1", { tabindex: "-1" }, "Personal centre"));
  const profileBox = h("div", { class: "card" }, loading("Loading your profile…"));
  const agreementsBox = h("div", { class: "card" }, h("h2", {}, "Agreements"), loading());
  section.append(profileBox, passwordCard(ctx), agreementsBox, dangerCard(ctx));
  main.append(section);

  const loadProfile = async () => {
    profileBox.replaceChildren(loading("Loading your profile…"));
    try {
      const { user } = await api.get("/api/v1/profile");
      ctx.setUser(user);
      profileBox.replaceChildren(...profileCard(user, ctx));
    } catch (error) {
      profileBox.replaceChildren(errorBox(error, loadProfile));
    }
  };
  const loadAgreements = async () => {
    agreementsBox.replaceChildren(h("h2", {}, "Agreements"), loading());
    try {
      const agreements = await api.get("/api/v1/agreements", undefined, { auth: false });
      agreementsBox.replaceChildren(
        h("h2", {}, "Agreements"),
        agreementDetails(agreements.privacy_policy || {}, "privacy-policy"),
        agreementDetails(agreements.user_agreement || {}, "user-agreement"),
      );
    } catch (error) {
      agreementsBox.replaceChildren(h("h2", {}, "Agreements"), errorBox(error, loadAgreements));
    }
  };
  loadProfile();
  loadAgreements();
}

function profileCard(user, ctx) {
  const displayName = field({
    id: "profile-display-name",
    label: "Display name",
    attrs: { value: user.display_name || "", autocomplete: "name", maxlength: "64", required: true },
  });
  const phone = field({
    id: "profile-phone",
    label: "Phone number",
    type: "tel",
    hint: "International form, or choose the region for a national number.",
    attrs: { value: user.phone || "", autocomplete: "tel", inputmode: "tel" },
  });
  const region = field({ id: "profile-region", label: "Phone region", options: PHONE_REGIONS });
  const thumbnails = field({
    id: "profile-thumbnails",
    type: "checkbox",
    label: "Keep a small face thumbnail with each analysis",
    hint: "Off by default: only the scores are stored.",
    attrs: { checked: Boolean(user.store_thumbnails) },
  });
  const message = formMessage();
  const save = h("button", { type: "submit" }, "Save profile");
  const form = h("form", { class: "form", novalidate: true }, displayName, phone, region, thumbnails, message, save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    showFormMessage(message, "");
    const name = displayName.control.value.trim();
    const number = phone.control.value.trim();
    if (!name) setFieldError(displayName.control, "Enter a display name.");
    setFieldError(phone.control, validatePhone(number, false, region.control.value));
    if (form.querySelector('[aria-invalid="true"]')) return focusFirstInvalid(form);
    const body = { display_name: name, store_thumbnails: thumbnails.control.checked };
    if (number !== (user.phone || "")) {
      body.phone = number;
      body.phone_region = region.control.value;
    }
    try {
      const reply = await busy(save, "Saving…", () => api.patch("/api/v1/profile", body));
      user = reply.user;
      ctx.setUser(user);
      phone.control.value = user.phone || "";
      showFormMessage(message, "Profile saved.", "success");
    } catch (error) {
      const target = { display_name: displayName, phone, phone_region: region }[error.field];
      if (target) {
        setFieldError(target.control, error.fieldMessage);
        target.control.focus();
      } else {
        showFormMessage(message, error.message);
      }
    }
  });
  return [
    h("h2", {}, "Profile"),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Username"),
      h("dd", { id: "profile-username" }, user.username),
      h("dt", {}, "Account"),
      h("dd", {}, ROLE_NAMES[user.role] || "User", user.organization ? `, ${user.organization}` : ""),
      h("dt", {}, "Member since"),
      h("dd", {}, formatDate(user.created_at)),
    ),
    form,
  ];
}

function passwordCard(ctx) {
  const current = field({
    id: "pw-current",
    label: "Current password",
    type: "password",
    attrs: { autocomplete: "current-password", required: true },
  });
  const next = field({
    id: "pw-new",
    label: "New password",
    type: "password",
    hint: "At least 10 characters, not your username.",
    attrs: { autocomplete: "new-password", required: true },
  });
  const repeat = field({
    id: "pw-repeat",
    label: "Repeat new password",
    type: "password",
    attrs: { autocomplete: "new-password", required: true },
  });
  const message = formMessage();
  const submit = h("button", { type: "submit" }, "Change password");
  const form = h("form", { class: "form", novalidate: true }, current, next, repeat, message, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    showFormMessage(message, "");
    if (!current.control.value) setFieldError(current.control, "Enter your current password.");
    setFieldError(next.control, validatePassword(next.control.value, ctx.user?.username || ""));
    if (repeat.control.value !== next.control.value) setFieldError(repeat.control, "The passwords do not match.");
    if (form.querySelector('[aria-invalid="true"]')) return focusFirstInvalid(form);
    try {
      const reply = await busy(submit, "Changing…", () =>
        api.post("/api/v1/profile/password", {
          current_password: current.control.value,
          new_password: next.control.value,
        }),
      );
      session.store(reply.tokens);
      form.reset();
      showFormMessage(message, "Password changed. Your other sessions were logged out.", "success");
    } catch (error) {
      const wrongPassword = ["UNAUTHENTICATED", "PERMISSION_DENIED"].includes(error.code);
      const target = error.field === "current_password" || wrongPassword ? current : next;
      setFieldError(target.control, error.fieldMessage);
      target.control.focus();
    }
  });
  return h("div", { class: "card" }, h("h2", {}, "Change password"), form);
}

function dangerCard(ctx) {
  const logout = h("button", { type: "button", class: "secondary", id: "logout" }, "Log out");
  logout.addEventListener("click", () => busy(logout, "Logging out…", () => ctx.logout()));
  const remove = h("button", { type: "button", class: "danger", id: "delete-account" }, "Delete my account…");
  remove.addEventListener("click", async () => {
    const password = field({
      id: "delete-password",
      label: "Your password",
      type: "password",
      attrs: { autocomplete: "current-password", required: true },
    });
    const ok = await confirmDialog({
      title: "Delete your account?",
      text: "Your account, your whole history and every access you granted will be deleted. This cannot be undone.",
      confirmLabel: "Delete account",
      extra: password,
      validate: () => {
        const problem = password.control.value ? "" : "Enter your password to confirm.";
        setFieldError(password.control, problem);
        if (problem) password.control.focus();
        return problem;
      },
    });
    if (!ok) return;
    try {
      const reply = await busy(remove, "Deleting…", () =>
        api.post("/api/v1/profile/delete", { password: password.control.value }),
      );
      session.clear("");
      ctx.setUser(null);
      ctx.flashLogin(`Your account was deleted, with ${reply.deleted_analyses || 0} analyses.`);
    } catch (error) {
      ctx.announce(
        ["UNAUTHENTICATED", "PERMISSION_DENIED"].includes(error.code) ? "That password is not correct." : error.message,
        "error",
      );
    }
  });
  return h(
    "div",
    { class: "card" },
    h("h2", {}, "Session and account"),
    h("div", { class: "toolbar" }, logout, remove),
  );
}
