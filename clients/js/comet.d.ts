// Types of @cometgw/client (comet.js).

export type Transport = "websocket" | "sse" | "longpoll";
export type State = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface Options {
  /** The id this client receives for (an integer, as a number or a decimal string). */
  id: number | string;
  /** Topics to be in from the start (kept across reconnects; join and leave change them). */
  topics?: string[];
  /** Also receive the topics' join and leave events ("presence"). */
  presence?: boolean;
  /** On the first connection, first receive up to this many of each
   * topic's last messages (a router run with -topic-history), then the
   * live ones; they come with an empty cursor. */
  rewind?: number;
  /** Start after this cursor (a position from an earlier client of the same id). */
  cursor?: string;
  /** A token (JWT) for a gateway that asks for one. */
  token?: string;
  /** Gives a fresh token: called before connecting without one (or with one
   * that expires within a minute), before the current one expires while
   * connected (30 s ahead, or a fifth of its remaining life if shorter; a
   * WebSocket renews in place with the auth request, SSE reconnects with
   * its cursor, long-poll uses it on its next poll), and after a 401. */
  getToken?: () => Promise<string> | string;
  /** Transports in the order tried (default all three: websocket, sse, longpoll). */
  transports?: Transport[];
  /** The WebSocket class (default globalThis.WebSocket; in Node 20, pass the `ws` package's). */
  WebSocket?: unknown;
  /** The fetch function (default globalThis.fetch). */
  fetch?: typeof fetch;
  /** The first reconnect delay in ms (default 500); doubled each failure, with jitter. */
  minDelay?: number;
  /** The longest reconnect delay in ms (default 20000). */
  maxDelay?: number;
  /** How long a transport may take to open before the next is tried, ms (default 5000). */
  connectTimeout?: number;
  /** An SSE stream quiet this long is opened again, ms (default 45000: three gateway heartbeats). */
  idleTimeout?: number;
  /** How long a request waits for its reply (and for a connection), ms (default 20000). */
  requestTimeout?: number;
  /** Seconds a long-poll waits at the gateway (default 25). */
  pollTimeout?: number;
  /** How long a transport that failed where a later one worked is skipped, ms (default 600000). */
  rememberFor?: number;
}

export interface Message {
  /** The message: a string, or bytes if it was not UTF-8 (WebSocket). */
  data: string | Uint8Array;
  /** Its position, to resume from ("" for a broadcast before any positioned message). */
  cursor: string;
}

export interface Missed {
  /** Where the stream goes on from. */
  cursor: string;
  /** The cursor the client asked to resume after: the messages between are gone. */
  after: string;
}

export interface Presence {
  type?: "presence";
  presence: string;
  ids: number;
  joined?: number[];
  left?: number[];
  joined_more?: number;
  left_more?: number;
}

export interface StateChange {
  state: State;
  transport: Transport | "";
  /** With reconnecting: the wait before the next try, ms. */
  delay?: number;
  /** With closed: why, if it was not close(). */
  error?: CometError;
}

/** The router's account of a publish or send: every copy delivered, or dropped by reason. */
export interface Reply {
  op: string;
  delivered?: number;
  dropped?: { gone?: number; slow?: number; gateway?: number };
  void?: boolean;
  [k: string]: unknown;
}

export type ErrorCode = "closed" | "disconnected" | "timeout" | "transport" | "refused" | "auth" | "gateway";

export class CometError extends Error {
  code: ErrorCode;
  detail?: unknown;
  constructor(code: ErrorCode, message: string, detail?: unknown);
}

export interface Events {
  message: Message;
  missed: Missed;
  presence: Presence;
  state: StateChange;
  error: CometError;
  /** A reply no request waits for (its request timed out). */
  reply: Reply;
}

export class Comet {
  constructor(url: string, options: Options);
  readonly state: State;
  readonly transport: Transport | "";
  readonly cursor: string;
  readonly topics: string[];
  on<K extends keyof Events>(type: K, fn: (ev: Events[K]) => void): () => void;
  connect(): this;
  close(): void;
  publish(topic: string, data: string): Promise<Reply>;
  send(id: number | string, data: string): Promise<Reply>;
  ping(): Promise<Reply>;
  join(topics: string | string[]): Promise<Reply>;
  leave(topics: string | string[]): Promise<Reply>;
}

export function parseCursor(cursor: string): [string, number] | null;
export function tokenExpiry(token: string): number;
export function reconnectHint(code: number, reason: string): number;

export class SSEParser {
  constructor(onEvent: (ev: { id?: string; event: string; data?: string }) => void, onRetry: (ms: number) => void);
  push(text: string): void;
}
