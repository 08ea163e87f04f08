// The trial page: one image at a time, Yes/No + confidence 1-5 + optional label.
// Everything it needs comes from data-* attributes and the JSON API (no inline script, so a
// strict Content-Security-Policy holds); session_client.js holds what it shares with the 2-AFC
// page. Each rating's response carries the next trials, so after the first trial the page asks
// only for the rating and for the next trial's image, which it loads while the current trial is
// on screen. A rating is retried until the server has stored it; the server treats a repeat as
// the same rating, so retries can never store two.
"use strict";

(function () {
  const app = document.getElementById("trial-app");
  if (!app) return;
  const session = window.fvlabSession;
  const image = document.getElementById("trial-image");
  const label = document.getElementById("label");
  const next = document.getElementById("next");
  const choiceButtons = Array.from(app.querySelectorAll("[data-answer]"));
  const levelButtons = Array.from(app.querySelectorAll("[data-confidence]"));

  let state = null;
  let current = null;
  let answer = null;
  let confidence = null;
  let shownAt = 0;
  let busy = true;

  function preload(trial) {
    return session.load(trial.image);
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

  // `report`: tell the server when the image is on screen. Its clock for the answer starts at
  // the previous answer anyway, which is the moment a preloaded image appears; the report is
  // sent only when it says more: for the first trial this page shows (after a reload or coming
  // back) and for an image that was still loading when it was due.
  async function show(trial, report) {
    current = trial;
    busy = true;
    answer = null;
    confidence = null;
    setPressed(choiceButtons, null);
    setPressed(levelButtons, null);
    label.value = "";
    setEnabled(false);
    session.showProgress(state, trial);
    const waited = !session.isLoaded(trial.image);
    await preload(trial);
    image.src = trial.image;
    image.hidden = false;
    requestAnimationFrame(() => {
      shownAt = performance.now();
      busy = false;
      setEnabled(true);
      if (report || waited) fetch(trial.shown, { method: "POST" }).catch(() => undefined);
    });
  }

  async function carryOn(reply) {
    state = reply.state;
    const due = session.nextTrial(reply, preload);
    if (due === null) session.finish(state);
    else await show(due, Boolean(reply.recovered));
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
      await carryOn(await session.send(app, current.rating, body));
    } catch (err) {
      session.fail("Something went wrong", err);
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

  session.where(app).then(carryOn).catch((err) => session.fail("Could not load the study", err));
})();
