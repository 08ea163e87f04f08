// The 2-AFC trial page: two reference groups and two centre images; one button press answers
// (which centre image, how sure). Everything it needs comes from data-* attributes and the JSON
// API (no inline script, so a strict Content-Security-Policy holds); session_client.js holds
// what it shares with the rating page. Each answer's response carries the next trials, so after
// the first trial the page asks only for the answer and for the next trial's two pictures, which
// it loads while the current trial is on screen. An answer is retried until the server has
// stored it; the server treats a repeat as the same answer.
"use strict";

(function () {
  const app = document.getElementById("afc-app");
  if (!app) return;
  const session = window.fvlabSession;
  const refImages = Array.from(app.querySelectorAll("img.refs"));
  const emptyNotes = Array.from(app.querySelectorAll(".no-refs"));
  const queryImages = Array.from(app.querySelectorAll("img.query"));
  const buttons = Array.from(app.querySelectorAll("button.pick"));
  const feedback = document.getElementById("feedback");
  const KEYS = { 1: 0, 2: 1, 3: 2, 8: 3, 9: 4, 0: 5 }; // key → button, in reading order
  const FEEDBACK_MS = 1600;

  let state = null;
  let current = null;
  let shownAt = 0;
  let busy = true;

  function preload(trial) {
    // The references first, then the queries: the same order for every trial.
    return Promise.all([session.load(trial.references), session.load(trial.queries)]);
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
    session.showProgress(state, trial);
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

  function showFeedback(choice, correct) {
    const right = correct ? choice : 1 - choice;
    queryImages[right].classList.add("right-answer");
    if (!correct) queryImages[choice].classList.add("wrong-answer");
    feedback.textContent = correct ? "Right! That image belongs with the images on the right."
      : "Not this time: the other centre image belongs with the images on the right.";
    feedback.className = "feedback " + (correct ? "right" : "wrong");
    feedback.hidden = false;
  }

  async function carryOn(reply, pause) {
    state = reply.state;
    const due = session.nextTrial(reply, preload);
    if (pause) await session.wait(pause);
    if (due === null) session.finish(state);
    else await show(due);
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
      const reply = await session.send(app, current.answer, body);
      if (reply.feedback) showFeedback(choice, reply.feedback.correct);
      await carryOn(reply, reply.feedback ? FEEDBACK_MS : 0);
    } catch (err) {
      session.fail("Something went wrong", err);
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

  session.where(app).then((reply) => carryOn(reply, 0))
    .catch((err) => session.fail("Could not load the study", err));
})();
