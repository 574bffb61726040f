// Live updates: one EventSource on /api/v1/stream (Server-Sent Events). New events and
// findings are cloned from the page's <template> rows and filled with textContent only:
// data from the stream never becomes markup.
const MAX_ITEMS = 50; // a list may keep fewer: its data-max

function fill(row, values) {
  for (const element of row.querySelectorAll("[data-field]")) {
    const value = values[element.dataset.field];
    element.textContent = value === undefined || value === null ? "" : String(value);
    if (element.tagName === "TIME" && value) element.setAttribute("datetime", String(value));
  }
}

function prepend(list, row) {
  list.prepend(row);
  const max = Number(list.dataset.max) || MAX_ITEMS;
  while (list.children.length > max) list.lastElementChild.remove();
  const empty = list.parentElement && list.parentElement.querySelector(".empty");
  if (empty) empty.remove();
}

// The stream announces that events arrived ({"kind": "event", "count", "families", "ids"}:
// the ids make every announcement distinct); the page then asks for the latest events once
// (a second announcement during that request asks again afterwards) and adds the ones it
// does not show yet.
const EVENTS_URL = "/live/events";
let fetching = null;
let again = false;

async function refreshEvents(doc) {
  if (fetching) {
    again = true;
    return;
  }
  fetching = (async () => {
    do {
      again = false;
      const response = await fetch(EVENTS_URL, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const events = await response.json();
      if (Array.isArray(events)) for (const event of events.slice().reverse()) showEvent(doc, event);
    } while (again);
  })();
  try {
    await fetching;
  } catch {
    // a failed refresh is retried by the next announcement
  } finally {
    fetching = null;
  }
}

function showEvent(doc, event) {
  const template = doc.getElementById("event-template");
  const lists = doc.querySelectorAll('[data-live-list="event"]:not([data-country])');
  if (!template || lists.length === 0) return;
  let counted = false;
  for (const list of lists) {
    const id = String(event.id ?? "");
    if (!id || list.querySelector(`li[data-id="${CSS.escape(id)}"]`)) continue;
    const row = template.content.firstElementChild.cloneNode(true);
    row.dataset.id = id;
    row.classList.add("new");
    fill(row, event);
    prepend(list, row);
    counted = true;
  }
  if (counted) {
    const count = doc.querySelector(
      `[data-initiative="${CSS.escape(String(event.initiative))}"] [data-count="events"]`);
    if (count) count.textContent = String((Number(count.textContent) || 0) + 1);
  }
}

function showFinding(doc, message, words) {
  const template = doc.getElementById("finding-template");
  const id = String(message.id ?? "");
  if (!template || !id) return;
  for (const list of doc.querySelectorAll('[data-live-list="finding"]')) {
    const country = list.dataset.country;
    if (country && message.country !== country && message.market !== country) continue;
    let row = list.querySelector(`li[data-id="${CSS.escape(id)}"]`);
    const isNew = !row;
    if (isNew) {
      row = template.content.firstElementChild.cloneNode(true);
      row.dataset.id = id;
      for (const form of row.querySelectorAll("form[data-action]")) {
        form.setAttribute("action", `/findings/${encodeURIComponent(id)}/${form.dataset.action}`);
      }
    }
    const state = String(message.state || "open");
    row.dataset.state = state;
    row.dataset.severity = String(message.severity || "");
    fill(row, {
      severity: words[`severity.${message.severity}`] || message.severity || "",
      summary: message.summary ?? "",
      rule: message.rule ?? "",
      raised_at: message.raised_at ?? "",
      state: words[`state.${state}`] || state,
    });
    for (const form of row.querySelectorAll("form[data-action]")) {
      const hide = state === "resolved" || (form.dataset.action === "acknowledge" && state !== "open");
      form.hidden = hide;
    }
    if (isNew) {
      row.classList.add("new");
      prepend(list, row);
    }
  }
}

// A finding announcement carries its id, rule, state and severity; the summary and the
// time it was raised come from the API's finding, fetched once per announcement.
async function refreshFinding(doc, message, words) {
  let finding = message;
  try {
    const response = await fetch(`/api/v1/findings/${encodeURIComponent(String(message.id))}`,
      { headers: { Accept: "application/json" } });
    if (response.ok) finding = { ...(await response.json()), ...message };
  } catch {
    // show what the announcement carried
  }
  showFinding(doc, finding, words);
}

export function initLive(doc) {
  const url = doc.body.dataset.stream;
  if (!url || typeof EventSource === "undefined") return;
  const status = doc.getElementById("live-status");
  const words = (() => {
    try {
      return JSON.parse(doc.getElementById("i18n-data")?.textContent || "{}");
    } catch {
      return {};
    }
  })();
  const setState = (state) => {
    doc.body.dataset.live = state;
    if (!status) return;
    status.dataset.state = state;
    status.textContent = status.dataset[`text${state[0].toUpperCase()}${state.slice(1)}`] || "";
  };
  setState("connecting");
  const source = new EventSource(url);
  const seen = new Set();
  const handle = (raw) => {
    let message;
    try {
      message = JSON.parse(raw.data);
    } catch {
      return;
    }
    if (!message || typeof message !== "object") return;
    const key = `${raw.lastEventId || ""}|${raw.data}`;
    if (seen.has(key)) return; // the same message delivered as a named and an unnamed event
    seen.add(key);
    if (seen.size > 500) seen.clear();
    if (message.kind === "event") refreshEvents(doc);
    else if (message.kind === "finding") refreshFinding(doc, message, words);
  };
  source.addEventListener("open", () => setState("connected"));
  source.addEventListener("error", () => setState("lost"));
  source.addEventListener("message", handle);
  source.addEventListener("event", handle);
  source.addEventListener("finding", handle);
  window.addEventListener("pagehide", () => source.close());
}
