// Following a run's events (`GET /v1/runs/{id}/events`, Server-Sent Events
// numbered by sequence). EventSource cannot send a bearer token, so the
// stream is read with fetch and parsed with eventsource-parser. When the
// connection drops (a daemon restart), it reconnects with `Last-Event-ID`
// set to the last sequence seen: the daemon sends every later event once.
import { createParser } from "eventsource-parser";
import { authHeaders, type Schemas } from "./client";

/// One event of a run's log, as the API document describes it.
export type RunEvent = Schemas["RunEvent"];

export type Connection = "connecting" | "live" | "reconnecting" | "ended";

export interface Follow {
  onEvent: (event: RunEvent) => void;
  onConnection: (state: Connection, detail?: string) => void;
}

/// Follow `runId` from after sequence `after` until its final event or
/// until `signal` aborts. Events arrive in order, each once.
export async function follow(runId: string, after: number, f: Follow, signal: AbortSignal) {
  let last = after;
  let delay = 250;
  while (!signal.aborted) {
    f.onConnection(last === after ? "connecting" : "reconnecting");
    let ended = false;
    try {
      const response = await fetch(`/v1/runs/${encodeURIComponent(runId)}/events`, {
        headers: { ...authHeaders(), "Last-Event-ID": String(last), Accept: "text/event-stream" },
        signal,
      });
      if (!response.ok || !response.body) {
        const body = await response.json().catch(() => ({}));
        // Refusals that waiting cannot fix end the stream.
        if (response.status === 401 || response.status === 404) {
          f.onConnection("ended", body.error ?? response.statusText);
          return;
        }
        throw new Error(body.error ?? response.statusText);
      }
      f.onConnection("live");
      delay = 250;
      const parser = createParser({
        onEvent(message) {
          const event = JSON.parse(message.data) as RunEvent;
          if (event.seq <= last) return; // never twice
          last = event.seq;
          if (event.type === "run_finished") ended = true;
          f.onEvent(event);
        },
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } catch (e) {
      if (signal.aborted) return;
      f.onConnection("reconnecting", e instanceof Error ? e.message : String(e));
    }
    if (ended) {
      f.onConnection("ended");
      return;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 2000);
  }
}
