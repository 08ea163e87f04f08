// The 2-AFC trial page: two reference groups and two centre images; one button press answers
// (which centre image, how sure). Everything it needs comes from data-* attributes and the JSON
// API (no inline script, so a strict Content-Security-Policy holds). Each answer's response
// carries the next trials, so after the first trial the page asks only for the answer and for
// the next trial's two pictures, which it loads while the current trial is on screen. An answer
// is retried until the server has stored it; the server treats a repeat as the same answer.
"use strict";

(function () {
  const app = document.getElementById("afc-app");
  if (!app) return;
  const sessionUrl = app.dataset.sessionUrl;
  const trialsUrl = app.dataset.trialsUrl;
  const refImages = Array.from(app.querySelectorAll("img.refs"));
  const emptyNotes = Array.from(app.querySelectorAll(".no-refs"));
  const queryImages = Array.from(app.querySelectorAll("img.query"));
  const buttons = Array.from(app.querySelectorAll("button.pick"));
  const status = document.getElementById("status");
  const feedback = document.getElementById("feedback");
  const progress = document.getElementById("progress");
  const progressLabel = document.getElementById("progress-label");
  const phaseNote = document.getElementById("phase-note");
  const KEYS = { 1: 0, 2: 1, 3: 2, 8: 3, 9: 4, 0: 5 }; // key → button, in reading order
  const FEEDBACK_MS = 1600;
  const AHEAD = 2; // the trial due and the one after it

  let state = null;
  let current = null;
  let queue = [];
  const loaded = new Map();
  let shownAt = 0;
  let busy = true;

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  function load(url) {
    if (!url) return Promise.resolve();
    if (!loaded.has(url)) {
      const img = new Image();
      img.src = url;
      loaded.set(url, img.decode().catch(() => undefined));
    }
    return loaded.get(url);
  }

  function preload(trial) {
    // The references first, then the queries: the same order for every trial.
    return Promise.all([load(trial.references), load(trial.queries)]);
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

  function setEnabled(enabled) {
    buttons.forEach((b) => { b.disabled = !enabled; });
  }

  function clearMarks() {
    buttons.forEach((b) => b.setAttribute("aria-pressed", "false"));
    queryImages.forEach((img) => img.classList.remove("right-answer", "wrong-answer"));
    feedback.hidden = true;
    feedback.textContent = "";
    feedback.className = "feedback";
  }

  async function show(trial) {
    current = trial;
    busy = true;
    setEnabled(false);
    clearMarks();
    showProgress(trial);
    await preload(trial);
    refImages.forEach((img) => {
      if (trial.references) img.src = trial.references;
      img.hidden = !trial.references;
    });
    emptyNotes.forEach((note) => { note.hidden = Boolean(trial.references); });
    queryImages.forEach((img) => {
      img.src = trial.queries;
      img.hidden = false;
    });
    requestAnimationFrame(() => {
      shownAt = performance.now();
      busy = false;
      setEnabled(true);
    });
  }

  function wait(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async function send(trial, body) {
    for (let attempt = 0; ; attempt += 1) {
      let response;
      try {
        response = await fetch(trial.answer, {
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
      if (response.status === 409) {
        // Answered already (in another tab, say): carry on from what the server holds.
        const [fresh, open] = await Promise.all([getJson(sessionUrl),
          getJson(trialsUrl + "?limit=" + AHEAD)]);
        return { state: fresh, upcoming: open.trials };
      }
      throw new Error(problem.error || "HTTP " + response.status);
    }
  }

  function showFeedback(choice, correct) {
    const right = correct ? choice : 1 - choice;
    queryImages[right].classList.add("right-answer");
    if (!correct) queryImages[choice].classList.add("wrong-answer");
    feedback.textContent = correct ? "Right! That image belongs with the images on the right."
      : "Not this time: the other centre image belongs with the images on the right.";
    feedback.className = "feedback " + (correct ? "right" : "wrong");
    feedback.hidden = false;
  }

  async function answer(button) {
    if (busy) return;
    busy = true;
    setEnabled(false);
    button.setAttribute("aria-pressed", "true");
    const choice = Number(button.dataset.choice);
    const body = {
      choice: choice,
      confidence: Number(button.dataset.confidence),
      rt_ms: Math.max(1, Math.round(performance.now() - shownAt)),
    };
    try {
      const result = await send(current, body);
      status.textContent = "";
      state = result.state;
      queue = result.upcoming || [];
      if (queue.length > 1) preload(queue[1]);
      if (result.feedback) {
        showFeedback(choice, result.feedback.correct);
        await wait(FEEDBACK_MS);
      }
      if (state.phase === "done" || !queue.length) {
        window.location.assign(state.done_url);
        return;
      }
      await show(queue[0]);
    } catch (err) {
      status.textContent = "Something went wrong: " + err.message + ". Please reload the page.";
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key in KEYS) {
      event.preventDefault();
      answer(buttons[KEYS[event.key]]);
      return;
    }
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      // Move between the six buttons; Enter or Space then presses the one in focus.
      event.preventDefault();
      const at = buttons.indexOf(document.activeElement);
      const step = event.key === "ArrowLeft" ? -1 : 1;
      const start = at < 0 ? (step < 0 ? 3 : 2) : at;
      buttons[Math.min(buttons.length - 1, Math.max(0, start + step))].focus();
    }
  });
  buttons.forEach((b) => b.addEventListener("click", () => answer(b)));

  (async function start() {
    try {
      state = await getJson(sessionUrl);
      if (state.phase === "done") {
        window.location.assign(state.done_url);
        return;
      }
      queue = (await getJson(trialsUrl + "?limit=" + AHEAD)).trials;
      if (!queue.length) {
        window.location.assign(state.done_url);
        return;
      }
      const first = show(queue[0]);
      if (queue.length > 1) preload(queue[1]);
      await first;
    } catch (err) {
      status.textContent = "Could not load the study: " + err.message + ". Please reload.";
    }
  })();
})();
