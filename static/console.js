/* JCT console: keeps the live part of a page current and makes cancel/retry work in place.
   Every page is complete without this file; it re-fetches the same server-rendered page and swaps
   its [data-live] element, so there is one renderer (Jinja) and no client-side templates. */
(() => {
  "use strict";

  const PERIOD_MS = 2000;
  const STORAGE_KEY = "jct.console.live";
  const control = document.querySelector(".live-control");
  const toggle = document.getElementById("live-toggle");
  const stamp = document.getElementById("live-stamp");
  const flash = document.getElementById("flash");
  /* With a console session (tokens on), writes carry the page's CSRF token; empty otherwise. */
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrfToken = csrfMeta ? csrfMeta.content : "";
  let inFlight = false;

  const region = () => document.querySelector("[data-live]");
  const wanted = () => {
    const live = region();
    return Boolean(live && live.dataset.live === "on" && toggle.checked && !document.hidden);
  };

  function showStamp(text, stale) {
    stamp.textContent = text;
    stamp.classList.toggle("stale", Boolean(stale));
  }

  function showFlash(text, bad) {
    flash.textContent = text;
    flash.classList.toggle("bad", Boolean(bad));
    flash.hidden = false;
  }

  /* Keep <details> the reader opened open across a swap. */
  function carryOpenDetails(from, to) {
    for (const old of from.querySelectorAll("details[data-keep]")) {
      const twin = to.querySelector(`details[data-keep="${CSS.escape(old.dataset.keep)}"]`);
      if (twin) twin.open = old.open;
    }
  }

  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    try {
      const response = await fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      if (response.redirected) throw new Error("signed out; reload to sign in");
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.querySelector("[data-live]");
      const current = region();
      if (fresh && current) {
        carryOpenDetails(current, fresh);
        current.replaceWith(document.adoptNode(fresh));
        document.title = page.title;
      }
      showStamp(`updated ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      showStamp(`refresh failed (${error.message})`, true);
    } finally {
      inFlight = false;
    }
  }

  function describe(action, body) {
    if (action === "cancel" && body.cancel_requested) return "cancel requested; the worker stops at the next step boundary";
    return `${action}: task is now ${body.status}`;
  }

  function failure(body, response) {
    const state = body && body.detail && body.detail.status ? ` (the task is ${body.detail.status})` : "";
    return `${(body && body.error) || `HTTP ${response.status}`}${state}`;
  }

  /* Cancel and retry forms post to the JSON API; without JavaScript the browser posts them itself. */
  async function submitAction(form) {
    const action = form.dataset.action;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      const headers = { Accept: "application/json" };
      if (csrfToken) headers["X-CSRF-Token"] = csrfToken;
      const response = await fetch(form.action, { method: "POST", headers });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(failure(body, response));
      showFlash(describe(action, body));
      await refresh();
    } catch (error) {
      showFlash(`${action} refused: ${error.message}`, true);
      if (button) button.disabled = false;
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.action) return;
    event.preventDefault();
    submitAction(form);
  });

  /* "/" focuses the search box, as in most tools people keep open. */
  document.addEventListener("keydown", (event) => {
    const typing = event.target instanceof HTMLElement && event.target.closest("input, textarea, select");
    if (event.key !== "/" || typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const box = document.querySelector('input[type="search"]');
    if (box) {
      event.preventDefault();
      box.focus();
      box.select();
    }
  });

  if (region()) {
    control.hidden = false;
    toggle.checked = localStorage.getItem(STORAGE_KEY) !== "off";
    toggle.addEventListener("change", () => {
      localStorage.setItem(STORAGE_KEY, toggle.checked ? "on" : "off");
      if (wanted()) refresh();
    });
    document.addEventListener("visibilitychange", () => { if (wanted()) refresh(); });
    window.setInterval(() => { if (wanted()) refresh(); }, PERIOD_MS);
  }
})();
