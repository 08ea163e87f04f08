// The end page hands the annotator back to Prolific (a link) or MTurk (a form POST) by itself
// after a short pause, so the completion code can be read first; the button works at once.
"use strict";

(function () {
  const handoff = document.getElementById("handoff");
  if (!handoff) return;
  const HANDOFF_DELAY_MS = 3000;
  setTimeout(() => {
    if (handoff instanceof HTMLFormElement) handoff.requestSubmit();
    else window.location.assign(handoff.href);
  }, HANDOFF_DELAY_MS);
})();
