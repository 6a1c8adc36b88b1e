/** React state for one spool stream; the lib/ client does the work. */
import { useCallback, useEffect, useRef, useState } from "react";
import {
  NO_PARTS,
  SpoolStream,
  applyEvent,
  applyParts,
  isTerminal,
  type ClientOptions,
  type MessageParts,
  type Status,
  type StreamHandlers,
  type StreamRequest,
} from "./lib";

export interface StreamState {
  streamId: string | null;
  /** The answer so far: the delta texts up to lastSeq, before any Markdown. */
  text: string;
  /** Reasoning, refusal and tool calls up to lastSeq (absent in a state saved by an older page). */
  parts?: MessageParts;
  lastSeq: number;
  /** A terminal event arrived: there is nothing left to follow. */
  ended: boolean;
  status: Status | null;
}

export const NO_STREAM: StreamState = { streamId: null, text: "", lastSeq: 0, ended: false, status: null };

/** `initial` is shown until start() or resume(): a saved answer, say, before it is resumed. */
export function useStream(initial: StreamState = NO_STREAM, options: ClientOptions = {}) {
  const [state, setState] = useState<StreamState>(initial);
  const [cancelError, setCancelError] = useState<string | null>(null);
  const stream = useRef<SpoolStream | null>(null);
  const optionsRef = useRef(options);

  useEffect(() => () => stream.current?.close(), []);

  const attach = useCallback((shown: StreamState, open: (handlers: StreamHandlers) => SpoolStream | null) => {
    stream.current?.close();
    setState(shown);
    setCancelError(null);
    stream.current = open({
      onId: (streamId) => setState((s) => ({ ...s, streamId })),
      onEvent: (event) =>
        setState((s) => ({
          ...s,
          lastSeq: event.seq,
          text: applyEvent(s.text, event),
          parts: applyParts(s.parts ?? NO_PARTS, event),
          ended: isTerminal(event),
        })),
      onStatus: (status) => setState((s) => ({ ...s, status })),
    });
  }, []);

  /** Starts a new answer. */
  const start = useCallback(
    (request: StreamRequest) =>
      attach({ ...NO_STREAM, status: { state: "connecting" } }, (handlers) =>
        SpoolStream.start(request, handlers, optionsRef.current),
      ),
    [attach],
  );

  /** Shows `saved` and, unless it has ended, follows its stream from saved.lastSeq. */
  const resume = useCallback(
    (saved: StreamState) => {
      const id = saved.ended ? null : saved.streamId;
      attach(id === null ? saved : { ...saved, status: { state: "connecting" } }, (handlers) =>
        id === null ? null : SpoolStream.follow(id, saved.lastSeq, handlers, optionsRef.current),
      );
    },
    [attach],
  );

  const cancel = useCallback(async () => {
    try {
      await stream.current?.cancel();
    } catch (error) {
      setCancelError(`stop failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }, []);

  return { ...state, cancelError, start, resume, cancel };
}
