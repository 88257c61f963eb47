"use strict";
// The campaign form's live preview: as the operator types the text (or picks the audience), the server renders it
// for the first contact it would reach, by the same rules as a run's messages (campaigns/texts.py).
// The admin loads form media in the head: wait for the form.
document.addEventListener("DOMContentLoaded", function () {
  const text = document.getElementById("id_text");
  if (!text || !text.dataset.previewUrl) return;  // a launched campaign's page shows its text read-only
  const shown = document.createElement("div");
  shown.id = "campaign-preview";
  shown.className = "help";
  shown.setAttribute("aria-live", "polite");
  text.insertAdjacentElement("afterend", shown);
  let timer = null;
  let asked = 0;

  function refresh() {
    const query = new URLSearchParams({ text: text.value });
    const audience = document.getElementById("id_audience");
    if (audience && audience.value) query.set("audience", audience.value);
    const recipients = document.getElementById("id_recipients");
    if (recipients) for (const option of recipients.selectedOptions) query.append("recipients", option.value);
    const mine = ++asked;  // an answer to an older keystroke must not overwrite a newer one
    fetch(text.dataset.previewUrl + "?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((answer) => answer.json())
      .then((body) => { if (mine === asked) shown.textContent = "Preview: " + body.preview; })
      .catch(() => { if (mine === asked) shown.textContent = "Preview unavailable."; });
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  text.addEventListener("input", soon);
  const audience = document.getElementById("id_audience");
  if (audience) audience.addEventListener("change", soon);
  refresh();
});
