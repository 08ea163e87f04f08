// The trial page: one image at a time, Yes/No + confidence 1-5 + optional label.
// Everything it needs comes from data-* attributes and the JSON API (no inline script, so a
// strict Content-Security-Policy holds). A rating is retried until the server has stored it;
// the server treats a repeat as the same rating, so retries can never store two.
"use strict";

(function () {
  const app = document.getElementById("trial-app");
  if (!app) return;
  const sessionUrl = app.dataset.sessionUrl;
  const trialsUrl = app.dataset.trialsUrl;
  const image = document.getElementById("trial-image");
  const label = document.getElementById("label");
  const next = document.getElementById("next");
  const status = document.getElementById("status");
  const progress = document.getElementById("progress");
  const progressLabel = document.getElementById("progress-label");
  const phaseNote = document.getElementById("phase-note");
  const choiceButtons = Array.from(app.querySelectorAll("[data-answer]"));
  const levelButtons = Array.from(app.querySelectorAll("[data-confidence]"));
  const PRELOAD = 5;

  let state = null;
  let current = null;
  let queue = [];
  const preloaded = new Map();
  let answer = null;
  let confidence = null;
  let shownAt = 0;
  let busy = true;

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  function preload(trial) {
    if (!preloaded.has(trial.token)) {
      const img = new Image();
      img.src = trial.image;
      preloaded.set(trial.token, img.decode().catch(() => undefined));
    }
    return preloaded.get(trial.token);
  }

  async function refill() {
    const data = await getJson(trialsUrl + "?limit=" + (PRELOAD + 1));
    const upcoming = data.trials;
    if (current && upcoming.length && upcoming[0].token === current.token) upcoming.shift();
    queue = upcoming;
    queue.forEach(preload);
  }

  function showProgress(trial) {
    const practice = trial && trial.practice;
    const part = practice ? state.practice : state.trials;
    const number = Math.min(part.done + 1, part.total);
    progressLabel.textContent = (practice ? "Practice " : "") + number + " of " + part.total;
    progress.max = Math.max(part.total, 1);
    progress.value = part.done;
    phaseNote.hidden = !practice;
  }

  function setPressed(buttons, chosen) {
    buttons.forEach((b) => b.setAttribute("aria-pressed", String(b === chosen)));
  }

  function setEnabled(enabled) {
    choiceButtons.concat(levelButtons).forEach((b) => { b.disabled = !enabled; });
    label.disabled = !enabled;
    next.disabled = !enabled || answer === null || confidence === null;
  }

  function choose(value) {
    if (busy) return;
    answer = value;
    setPressed(choiceButtons, choiceButtons.find((b) => b.dataset.answer === value));
    setEnabled(true);
  }

  function rate(level) {
    if (busy) return;
    confidence = level;
    setPressed(levelButtons, levelButtons.find((b) => Number(b.dataset.confidence) === level));
    setEnabled(true);
  }

  async function show(trial) {
    current = trial;
    busy = true;
    answer = null;
    confidence = null;
    setPressed(choiceButtons, null);
    setPressed(levelButtons, null);
    label.value = "";
    setEnabled(false);
    showProgress(trial);
    await preload(trial);
    image.src = trial.image;
    image.hidden = false;
    requestAnimationFrame(() => {
      shownAt = performance.now();
      busy = false;
      setEnabled(true);
      fetch(trial.shown, { method: "POST" }).catch(() => undefined);
    });
  }

  function wait(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async function send(trial, body) {
    for (let attempt = 0; ; attempt += 1) {
      let response;
      try {
        response = await fetch(trial.rating, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(body),
        });
      } catch (err) {
        status.textContent = "Connection problem. Retrying…";
        await wait(Math.min(1000 * 2 ** attempt, 15000));
        continue;
      }
      if (response.ok) return response.json();
      if (response.status === 429 || response.status >= 500) {
        status.textContent = "The server is busy. Retrying…";
        await wait(Math.min(1000 * 2 ** attempt, 15000));
        continue;
      }
      const problem = await response.json().catch(() => ({}));
      if (response.status === 409) return { state: await getJson(sessionUrl) };
      throw new Error(problem.error || "HTTP " + response.status);
    }
  }

  async function submit() {
    if (busy || answer === null || confidence === null) return;
    busy = true;
    setEnabled(false);
    const body = {
      interpretable: answer === "yes",
      confidence: confidence,
      label: label.value.trim() || null,
      rt_ms: Math.max(1, Math.round(performance.now() - shownAt)),
    };
    try {
      const result = await send(current, body);
      status.textContent = "";
      state = result.state;
      if (state.phase === "done") {
        window.location.assign(state.done_url);
        return;
      }
      if (!queue.length) await refill();
      const following = queue.shift();
      if (!following) {
        window.location.assign(state.done_url);
        return;
      }
      await show(following);
      refill().catch(() => undefined);
    } catch (err) {
      status.textContent = "Something went wrong: " + err.message + ". Please reload the page.";
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target === label) {
      if (event.key === "Enter") {
        event.preventDefault();
        submit();
      }
      return;
    }
    const key = event.key.toLowerCase();
    if (key === "y") choose("yes");
    else if (key === "n") choose("no");
    else if (/^[1-5]$/.test(key)) rate(Number(key));
    else if (key === "enter") {
      event.preventDefault();
      submit();
    } else return;
    event.preventDefault();
  });
  choiceButtons.forEach((b) => b.addEventListener("click", () => choose(b.dataset.answer)));
  levelButtons.forEach((b) => b.addEventListener("click", () => rate(Number(b.dataset.confidence))));
  next.addEventListener("click", submit);

  (async function start() {
    try {
      state = await getJson(sessionUrl);
      if (state.phase === "done") {
        window.location.assign(state.done_url);
        return;
      }
      await refill();
      await show(queue.shift());
      refill().catch(() => undefined);
    } catch (err) {
      status.textContent = "Could not load the study: " + err.message + ". Please reload.";
    }
  })();
})();
