// The chat page: streams POST /v1/chat/completions (server-sent events), shows /info's engine
// facts and the last answer's speed. Vanilla JS, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "llmserve.apiKey";

const state = {
  messages: [], // the conversation so far: {role: "user"|"assistant", content}
  model: null, // the served model's id, from GET /v1/models
  modelKey: null, // the API key the model id was read with (re-read when the key changes)
  controller: null, // AbortController of the answer streaming now
};

// ---- helpers -------------------------------------------------------------------------------

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// The message of an error response: OpenAI's {"error": {"message": ...}} on /v1/*, the app's
// own {"error": "..."} elsewhere, else the status line.
async function errorMessage(response) {
  let text = "";
  try {
    text = await response.text();
    const body = JSON.parse(text);
    const error = body && body.error;
    if (error && typeof error === "object" && error.message) return `${response.status}: ${error.message}`;
    if (typeof error === "string") return `${response.status}: ${error}`;
  } catch (_) {
    // not JSON: fall through to the raw text
  }
  return `${response.status} ${response.statusText}${text ? `: ${text.slice(0, 300)}` : ""}`;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").textContent = "";
  $("error").hidden = true;
}

function setBusy(busy) {
  document.body.dataset.state = busy ? "streaming" : "idle";
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

function addMessage(role, content) {
  const item = document.createElement("div");
  item.className = `msg ${role}`;
  const who = document.createElement("div");
  who.className = "role";
  who.textContent = role;
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = content; // never innerHTML: the model's text is text
  item.append(who, text);
  $("messages").append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function formatSeconds(seconds) {
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}

// ---- engine facts --------------------------------------------------------------------------

function fact(name, value, title) {
  if (value === null || value === undefined || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = String(value);
  if (title) dd.title = title;
  const pair = document.createElement("div"); // a <dl> may group its pairs in <div>s
  pair.append(dt, dd);
  $("facts").append(pair);
}

function basename(path) {
  return path ? String(path).replace(/\/+$/, "").split("/").pop() : "";
}

function renderInfo(info) {
  const settings = info.settings || {};
  const engine = info.engine || {};
  $("facts").replaceChildren();
  fact("model", settings.model_id || basename(engine.model_dir || settings.model_dir),
       engine.model_dir || "");
  fact("engine", engine.engine || settings.engine);
  fact("vllm", engine.vllm_version);
  fact("device", engine.device);
  fact("dtype", engine.dtype || settings.dtype, engine.dtype_choice || "");
  fact("quant", engine.quantization);
  fact("kv cache", engine.kv_cache_dtype);
  fact("max len", engine.max_model_len || settings.max_model_len);
  fact("prefix cache", engine.prefix_caching === undefined ? null : engine.prefix_caching ? "on" : "off");
  if (engine.speculative) fact("speculative", `${engine.speculative.method} ×${engine.speculative.num_speculative_tokens}`);
  fact("cpu", engine.cpu, (engine.cpu_flags || []).join(" "));
  $("status").textContent = info.status;
  $("status").className = `pill ${info.status}`;
  $("facts").dataset.ready = info.engine ? "true" : "false";
}

// Control defaults from the server's own settings, once (the user's edits win afterwards).
let defaultsApplied = false;
function applyDefaults(settings) {
  if (defaultsApplied || !settings) return;
  defaultsApplied = true;
  if (typeof settings.temperature === "number") {
    $("temperature").value = settings.temperature;
    $("temperature-value").textContent = settings.temperature;
  }
  if (typeof settings.max_new_tokens === "number") $("max-tokens").value = settings.max_new_tokens;
  if (typeof settings.max_model_len === "number") $("max-tokens").max = settings.max_model_len;
  if (settings.system_prompt && !$("system").value) $("system").value = settings.system_prompt;
}

// /info until the engine is up (it loads after the server starts), then once more never.
async function loadInfo() {
  try {
    const response = await fetch("/info", { cache: "no-store" });
    if (!response.ok) throw new Error(await errorMessage(response));
    const info = await response.json();
    renderInfo(info);
    applyDefaults(info.settings);
    if (info.status === "loading") setTimeout(loadInfo, 2000);
  } catch (error) {
    $("status").textContent = "unreachable";
    $("status").className = "pill dead";
    showError(`GET /info: ${error.message}`);
    setTimeout(loadInfo, 5000);
  }
}

// ---- the served model ----------------------------------------------------------------------

async function servedModel() {
  const key = $("api-key").value.trim();
  if (state.model && state.modelKey === key) return state.model;
  const response = await fetch("/v1/models", { headers: authHeaders(), cache: "no-store" });
  if (!response.ok) throw new Error(`GET /v1/models: ${await errorMessage(response)}`);
  const body = await response.json();
  const first = body && Array.isArray(body.data) && body.data[0];
  if (!first || !first.id) throw new Error("GET /v1/models: the server lists no model");
  state.model = first.id;
  state.modelKey = key;
  $("model").textContent = first.id;
  return first.id;
}

// ---- chat ----------------------------------------------------------------------------------

// The server-sent events of `response`, one parsed `data:` payload at a time, until [DONE].
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (!line.startsWith("data:")) continue; // blank separators, comments, other fields
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
  throw new Error("the stream ended without data: [DONE]");
}

function requestBody(model) {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...state.messages);
  const body = {
    model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    temperature: Number($("temperature").value),
  };
  const maxTokens = $("max-tokens").value.trim();
  if (maxTokens) body.max_tokens = Number(maxTokens);
  return body;
}

function showStats(stats) {
  const { sent, first, last, tokens, counted, finish } = stats;
  $("stat-ttft").textContent = first ? formatSeconds((first - sent) / 1000) : "–";
  $("stat-total").textContent = last ? formatSeconds((last - sent) / 1000) : "–";
  $("stat-tokens").textContent = tokens === null ? "–" : `${tokens}${counted ? " (chunks)" : ""}`;
  // The decode rate: the n-1 tokens after the first over the time between first and last.
  const span = first && last ? (last - first) / 1000 : 0;
  $("stat-tps").textContent = tokens > 1 && span > 0 ? ((tokens - 1) / span).toFixed(1) : "–";
  $("stat-finish").textContent = finish || "–";
  $("stats").dataset.ready = "true";
}

async function send(prompt) {
  clearError();
  setBusy(true);
  state.messages.push({ role: "user", content: prompt });
  const userItem = addMessage("user", prompt);
  const answerItem = addMessage("assistant", "");
  const answer = answerItem.querySelector(".text");
  answerItem.dataset.done = "false";
  const controller = new AbortController();
  state.controller = controller;
  const stats = { sent: 0, first: 0, last: 0, tokens: null, counted: false, finish: null };
  let text = "";
  let chunks = 0;
  try {
    const model = await servedModel();
    stats.sent = performance.now();
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify(requestBody(model)),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    for await (const chunk of events(response)) {
      if (chunk.error) throw new Error(chunk.error.message || JSON.stringify(chunk.error));
      const choice = chunk.choices && chunk.choices[0];
      const piece = choice && choice.delta && choice.delta.content;
      if (piece) {
        const now = performance.now();
        if (!stats.first) stats.first = now;
        stats.last = now;
        chunks += 1;
        text += piece;
        answer.textContent = text;
        answerItem.scrollIntoView({ block: "end" });
      }
      if (choice && choice.finish_reason) stats.finish = choice.finish_reason;
      if (chunk.usage) stats.tokens = chunk.usage.completion_tokens;
    }
    if (stats.tokens === null) {
      stats.tokens = chunks; // no usage chunk: chunks, which may each hold several tokens
      stats.counted = true;
    }
    state.messages.push({ role: "assistant", content: text });
    showStats(stats);
  } catch (error) {
    if (!answerItem.isConnected) {
      // Cleared while streaming: the conversation is gone, nothing to keep.
    } else if (error.name === "AbortError" && text) {
      // Stopped: keep what came as the answer, so the conversation goes on from it.
      state.messages.push({ role: "assistant", content: text });
      stats.finish = "stopped";
      if (stats.tokens === null) { stats.tokens = chunks; stats.counted = true; }
      showStats(stats);
    } else if (error.name === "AbortError") {
      state.messages.pop(); // stopped before any text: the turn is taken back
      userItem.remove();
      answerItem.remove();
      if (!$("prompt").value) $("prompt").value = prompt;
    } else {
      // Failed: the turn is taken back (the prompt returns to the box) and the error shown.
      state.messages.pop();
      userItem.remove();
      answerItem.remove();
      if (!$("prompt").value) $("prompt").value = prompt;
      showError(error.message);
    }
  } finally {
    answerItem.dataset.done = "true";
    state.controller = null;
    setBusy(false);
  }
}

// ---- wiring --------------------------------------------------------------------------------

function init() {
  $("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("change", () => {
    const key = $("api-key").value.trim();
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
    state.model = null;
    clearError();
    servedModel().catch((error) => showError(error.message));
  });
  $("settings").addEventListener("submit", (event) => event.preventDefault());
  $("temperature").addEventListener("input", () => {
    $("temperature-value").textContent = $("temperature").value;
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const prompt = $("prompt").value.trim();
    if (!prompt || state.controller) return;
    $("prompt").value = "";
    send(prompt);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("clear").addEventListener("click", () => {
    if (state.controller) state.controller.abort();
    state.messages = [];
    $("messages").replaceChildren();
    clearError();
  });
  loadInfo();
  // The model's name, early; a missing key shows up here (and again on sending).
  servedModel().catch((error) => showError(error.message));
}

init();
