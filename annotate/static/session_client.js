// What both trial pages (trial.js: rating, choice.js: 2-AFC) share: JSON requests, sending an
// answer until the server has stored it, the next trials that every answer's response carries,
// preloading pictures, and the progress line. The templates load this script before the task's
// own (both deferred, so they run in that order); no inline script, so a strict
// Content-Security-Policy holds.
"use strict";

window.fvlabSession = (function () {
  const AHEAD = 2; // the trial due and the one after it, as each answer's response carries
  const status = document.getElementById("status");
  const progress = document.getElementById("progress");
  const progressLabel = document.getElementById("progress-label");
  const phaseNote = document.getElementById("phase-note");
  const loads = new Map();
  const loaded = new Set();

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  function wait(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // Fetch and decode a picture once; the browser's cache serves it again when it is shown.
  function load(url) {
    if (!url) return Promise.resolve();
    if (!loads.has(url)) {
      const img = new Image();
      img.src = url;
      loads.set(url, img.decode().catch(() => undefined).then(() => { loaded.add(url); }));
    }
    return loads.get(url);
  }

  function isLoaded(url) {
    return !url || loaded.has(url);
  }

  // Where the session stands on the server: its progress and its next open trials.
  async function where(app) {
    const [state, open] = await Promise.all([getJson(app.dataset.sessionUrl),
      getJson(app.dataset.trialsUrl + "?limit=" + AHEAD)]);
    return { state: state, upcoming: open.trials, recovered: true };
  }

  // POST an answer until the server has stored it: the server takes a repeat as the same answer,
  // so retries never store two. A 409 (answered in another tab, say) carries on from what the
  // server holds.
  async function send(app, url, body) {
    for (let attempt = 0; ; attempt += 1) {
      let response;
      try {
        response = await fetch(url, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(body),
        });
      } catch (err) {
        status.textContent = "Connection problem. Retrying…";
        await wait(Math.min(1000 * 2 ** attempt, 15000));
        continue;
      }
      if (response.status === 429 || response.status >= 500) {
        status.textContent = "The server is busy. Retrying…";
        await wait(Math.min(1000 * 2 ** attempt, 15000));
        continue;
      }
      status.textContent = "";
      if (response.ok) return response.json();
      const problem = await response.json().catch(() => ({}));
      if (response.status === 409) return where(app);
      throw new Error(problem.error || "HTTP " + response.status);
    }
  }

  // The trial now due after a reply (null when the session is over), with the one after it
  // loading while the due one is on screen.
  function nextTrial(reply, preload) {
    const upcoming = reply.state.phase === "done" ? [] : (reply.upcoming || []).slice(0, AHEAD);
    upcoming.forEach(preload); // the due one first; after the first trial it is loaded already
    return upcoming[0] || null;
  }

  function finish(state) {
    window.location.assign(state.done_url);
  }

  function showProgress(state, trial) {
    const practice = trial && trial.practice;
    const part = practice ? state.practice : state.trials;
    const number = Math.min(part.done + 1, part.total);
    progressLabel.textContent = (practice ? "Practice " : "") + number + " of " + part.total;
    progress.max = Math.max(part.total, 1);
    progress.value = part.done;
    phaseNote.hidden = !practice;
  }

  function fail(what, err) {
    status.textContent = what + ": " + err.message + ". Please reload the page.";
  }

  return { where, send, load, isLoaded, nextTrial, finish, showProgress, wait, fail };
})();
