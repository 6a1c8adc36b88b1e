/** A framework-free client for spool streams: copy this folder into another app. */
export { SpoolStream, backoffDelay } from "./client";
export type { Backoff, ClientOptions, Message, Status, StreamHandlers, StreamRequest } from "./client";
export { ConnectionLostError, HttpError, ProtocolError, SpoolError } from "./errors";
export { applyEvent, isTerminal, toEvent } from "./events";
export type { StreamEvent, TerminalEvent, Usage } from "./events";
export { LineDecoder, NdjsonParser, SseParser } from "./parser";
export type { EventParser } from "./parser";
