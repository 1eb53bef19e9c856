// The only script served without an API key: asks for the key when the server has keys,
// then fetches the page's code with it (as a bearer token) and starts it.
"use strict";
(function () {
  const KEY = "halo.apiKey";
  const $ = (id) => document.getElementById(id);

  function storedKey() {
    return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
  }

  function forget() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  }

  function headers(key) {
    return key ? { Authorization: "Bearer " + key } : {};
  }

  function fail(message) {
    const banner = $("boot-error");
    banner.textContent = message;
    banner.hidden = false;
  }

  function showLogin(message) {
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("login-key").focus();
  }

  async function loadScript(url, key) {
    const resp = await fetch(url, { headers: headers(key) });
    if (!resp.ok) throw new Error(url + ": HTTP " + resp.status);
    const blob = new Blob([await resp.text()], { type: "text/javascript" });
    const src = URL.createObjectURL(blob);
    await new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error("cannot run " + url));
      document.head.appendChild(script);
    });
    URL.revokeObjectURL(src);
  }

  async function start(key) {
    const resp = await fetch("/ui/config", { headers: headers(key) });
    if (resp.status === 401) {
      forget();
      showLogin(key ? "That key was refused." : "");
      return;
    }
    if (!resp.ok) throw new Error("/ui/config: HTTP " + resp.status);
    const config = await resp.json();
    for (const url of config.assets) await loadScript(url, key);
    $("login").hidden = true;
    $("logout").hidden = !config.auth;
    window.Halo.start(config, key);
  }

  async function boot() {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const key = $("login-key").value.trim();
      if (!key) return;
      forget();
      ($("login-remember").checked ? localStorage : sessionStorage).setItem(KEY, key);
      $("login-key").value = "";
      start(key).catch((err) => fail(String(err)));
    });
    $("logout").addEventListener("click", () => {
      forget();
      location.reload();
    });
    const auth = await (await fetch("/ui/auth")).json();
    const key = storedKey();
    if (auth.required && !key) showLogin("");
    else await start(auth.required ? key : "");
  }

  boot().catch((err) => fail("halo's page could not start: " + err));
})();
