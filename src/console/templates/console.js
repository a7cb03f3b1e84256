// Hearth console: live countdowns, the board's live update (server-sent events), copy to the
// clipboard, and the triage desk's deadline preview. Everything works without it but the
// live parts.
"use strict";

function countdowns() {
  const now = Date.now();
  document.querySelectorAll(".countdown").forEach((el) => {
    const time = el.previousElementSibling;
    const deadline = time ? Date.parse(time.getAttribute("datetime")) : NaN;
    if (Number.isNaN(deadline)) return;
    let left = Math.round((deadline - now) / 60000);
    const overdue = left < 0;
    left = Math.abs(left);
    const days = Math.floor(left / 1440), hours = Math.floor((left % 1440) / 60), minutes = left % 60;
    const text = (days ? days + "d " : "") + (days || hours ? hours + "h " : "") + String(minutes).padStart(2, "0") + "m";
    el.textContent = overdue ? "OVERDUE by " + text : text + " left";
    const strip = el.closest(".strip");
    if (strip) strip.classList.toggle("overdue", overdue);
  });
}

function live() {
  const board = document.getElementById("board");
  if (!board || !window.EventSource) return;
  const status = document.getElementById("live");
  let pending = false;
  const refresh = async () => {
    if (pending) return;
    pending = true;
    try {
      const response = await fetch(board.dataset.source, { credentials: "same-origin" });
      if (response.ok) {
        board.innerHTML = await response.text();
        const counts = board.querySelector("[data-pending]");
        const p = document.getElementById("pending-count"), o = document.getElementById("overdue-count");
        if (counts && p) p.textContent = counts.dataset.pending;
        if (counts && o) o.textContent = counts.dataset.overdue;
        board.dataset.updated = String(Date.now());
        countdowns();
      }
    } finally {
      pending = false;
    }
  };
  const events = new EventSource(board.dataset.live);
  events.addEventListener("change", refresh);
  events.onopen = () => { if (status) { status.textContent = "Live"; status.classList.remove("bad"); } };
  events.onerror = () => { if (status) { status.textContent = "Reconnecting…"; status.classList.add("bad"); } };
}

function copying() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    event.preventDefault();
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const text = source.value !== undefined ? source.value : source.textContent;
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch (e) {
      source.select && source.select();
      button.textContent = "Press Ctrl+C to copy";
    }
  });
}

function desk() {
  const form = document.getElementById("desk");
  if (!form) return;
  const preview = document.getElementById("deadline-preview");
  const sentence = document.getElementById("sentence");
  const choices = document.getElementById("sentences");
  const update = async () => {
    const chosen = form.querySelector("input[name=pathway]:checked");
    if (!chosen || !preview) return;
    preview.textContent = "Working out the deadline…";
    const response = await fetch("/console/triage/deadline?pathway=" + encodeURIComponent(chosen.value), { credentials: "same-origin" });
    const answer = await response.json().catch(() => ({ error: "no answer" }));
    preview.textContent = answer.error ? answer.error : answer.text;
    if (choices) {
      choices.querySelectorAll("option").forEach((o) => { o.hidden = o.dataset.pathway !== chosen.value && o.value !== ""; });
      const first = choices.querySelector("option[data-pathway='" + chosen.value + "']");
      if (first && sentence && !sentence.dataset.edited) { choices.value = first.value; sentence.value = first.value; }
    }
  };
  form.querySelectorAll("input[name=pathway]").forEach((r) => r.addEventListener("change", update));
  if (choices && sentence) {
    choices.addEventListener("change", () => { sentence.value = choices.value; sentence.dataset.edited = ""; });
    sentence.addEventListener("input", () => { sentence.dataset.edited = "1"; });
  }
  if (form.querySelector("input[name=pathway]:checked")) update();
}

document.addEventListener("DOMContentLoaded", () => {
  countdowns();
  setInterval(countdowns, 15000);
  live();
  copying();
  desk();
});
