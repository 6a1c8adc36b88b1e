/** A framework-free client for spool streams: copy this folder into another app. */
export { SpoolStream, backoffDelay } from "./client";
export type { Backoff, ClientOptions, Message, Status, StreamHandlers, StreamRequest } from "./client";
export { ConnectionLostError, HttpError, ProtocolError, SpoolError } from "./errors";
export { NO_PARTS, applyEvent, applyParts, isTerminal, toEvent } from "./events";
export type { MessageParts, StreamEvent, TerminalEvent, ToolCall, Usage } from "./events";
export { LineDecoder, NdjsonParser, SseParser } from "./parser";
export type { EventParser } from "./parser";
