/**
 * A stand-in for node:dgram (named so): an in-memory IPv4 network of UDP sockets, for tests
 * that drive a server's real receive paths with what no socket here can send (source port 0,
 * spoofed addresses, the server's own address and port) and at the volume a fuzz run needs.
 *
 * It behaves like dgram where a server can trip (checked against Node 20's dgram):
 * - send() throws synchronously: RangeError ERR_SOCKET_BAD_PORT for a port outside 1-65535,
 *   Error ERR_SOCKET_DGRAM_NOT_RUNNING after close(); close() twice throws the same;
 *   address() before bind throws EBADF; bind() twice throws ERR_SOCKET_ALREADY_BOUND.
 * - a send to a broadcast address (SO_BROADCAST is never set) fails with EACCES in the
 *   callback only, never as an 'error' event; to 0.0.0.0 it reaches this host, as on Linux.
 * - bind callbacks and deliveries are asynchronous (setImmediate), so a server that answers
 *   its own packets loops through the timer queue, where vi.runAllTimers() stops it.
 * Ports bound as 0 get an ephemeral port; a socket bound to 0.0.0.0 sends from `local`.
 */
import type { Socket } from "node:dgram";
import { EventEmitter } from "node:events";

export interface Peer {
  address: string;
  port: number;
}

export interface Datagram {
  from: Peer;
  to: Peer;
  packet: Buffer;
}

const codeError = (make: new (m: string) => Error, code: string, message: string) => Object.assign(new make(message), { code });

export class UdpNet {
  /** Sockets by the address and port they are bound to (`0.0.0.0:69` for a wildcard bind). */
  private readonly bound = new Map<string, DgramDouble>();
  private nextPort = 40_000;
  /** Every datagram that left a socket (what a capture on the wire would show). */
  readonly sent: Datagram[] = [];
  /** Every datagram handed to a socket's 'message' listeners. */
  readonly delivered: Datagram[] = [];
  /** Every error a send() threw synchronously (what would have been an uncaught exception without a guard). */
  readonly thrown: Error[] = [];
  /** Faults to inject into the next sends, to check that every send is guarded: "throw" as dgram throws, "callback" as it reports. */
  readonly faults: Array<"throw" | "callback"> = [];

  constructor(
    /** This host's address: the source of packets from a wildcard-bound socket, and where 0.0.0.0 leads. */
    readonly local = "10.231.40.1",
    /** Addresses a send without SO_BROADCAST is refused for (EACCES). */
    readonly broadcast: string[] = ["255.255.255.255", "10.231.40.255"],
  ) {}

  /** A new unbound socket; cast for code typed against dgram (its methods are the ones used). */
  socket(): DgramDouble {
    return new DgramDouble(this);
  }

  /** The factory a server takes in place of `createSocket("udp4")`. */
  readonly createSocket = (): Socket => this.socket() as unknown as Socket;

  /** Sends a datagram from anywhere (any address, any port, 0 included) to whatever is bound at `to`. */
  inject(packet: Buffer, from: Peer, to: Peer): void {
    this.deliver({ from, to, packet: Buffer.from(packet) });
  }

  /** Datagrams sent from a socket bound at this port (the listener, or one transfer). */
  sentFrom(port: number): Datagram[] {
    return this.sent.filter((d) => d.from.port === port);
  }

  /** @internal */
  bind(s: DgramDouble, port: number, address: string): Peer {
    const p = port === 0 ? this.nextPort++ : port;
    const key = `${address}:${p}`;
    if (this.bound.has(key)) throw codeError(Error, "EADDRINUSE", `bind EADDRINUSE ${key}`);
    this.bound.set(key, s);
    return { address, port: p };
  }

  /** @internal */
  unbind(at: Peer): void {
    this.bound.delete(`${at.address}:${at.port}`);
  }

  /** @internal */
  deliver(d: Datagram): void {
    const address = d.to.address === "0.0.0.0" ? this.local : d.to.address;
    const target = this.bound.get(`${address}:${d.to.port}`) ?? (address === this.local ? this.bound.get(`0.0.0.0:${d.to.port}`) : undefined);
    if (!target) return; // nobody there: an ICMP port unreachable nobody reads
    setImmediate(() => {
      if (target.closed) return;
      this.delivered.push(d);
      target.emit("message", d.packet, { address: d.from.address, port: d.from.port, family: "IPv4", size: d.packet.length });
    });
  }
}

export class DgramDouble extends EventEmitter {
  closed = false;
  private at: Peer | undefined;

  constructor(private readonly net: UdpNet) {
    super();
  }

  bind(port?: number | (() => void), address?: string | (() => void), cb?: () => void): this {
    if (this.closed) throw codeError(Error, "ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running");
    if (this.at) throw codeError(Error, "ERR_SOCKET_ALREADY_BOUND", "Socket is already bound");
    const callback = [port, address, cb].find((a): a is () => void => typeof a === "function");
    const p = typeof port === "number" ? port : 0;
    const a = typeof address === "string" ? address : "0.0.0.0";
    try {
      this.at = this.net.bind(this, p, a);
    } catch (err) {
      setImmediate(() => this.emit("error", err));
      return this;
    }
    setImmediate(() => {
      if (this.closed) return;
      this.emit("listening");
      callback?.();
    });
    return this;
  }

  send(packet: Buffer, port: number, address: string, cb?: (err: Error | null, bytes?: number) => void): void {
    const fail = (err: Error) => {
      this.net.thrown.push(err);
      throw err;
    };
    if (this.closed) fail(codeError(Error, "ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running"));
    if (!Number.isInteger(port) || port <= 0 || port > 65535) fail(codeError(RangeError, "ERR_SOCKET_BAD_PORT", `Port should be > 0 and < 65536. Received ${port}.`));
    const fault = this.net.faults.shift();
    if (fault === "throw") fail(codeError(Error, "ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running (injected)"));
    // An implicit bind, as dgram does for an unbound socket.
    if (!this.at) this.at = this.net.bind(this, 0, "0.0.0.0");
    if (fault === "callback" || this.net.broadcast.includes(address)) {
      const err = codeError(Error, "EACCES", `send EACCES ${address}:${port}`);
      setImmediate(() => cb?.(err));
      return;
    }
    const from = { address: this.at.address === "0.0.0.0" ? this.net.local : this.at.address, port: this.at.port };
    const d = { from, to: { address, port }, packet: Buffer.from(packet) };
    this.net.sent.push(d);
    this.net.deliver(d);
    setImmediate(() => cb?.(null, packet.length));
  }

  address(): { address: string; port: number; family: string } {
    if (this.closed) throw codeError(Error, "ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running");
    if (!this.at) throw codeError(Error, "EBADF", "getsockname EBADF");
    return { ...this.at, family: "IPv4" };
  }

  close(cb?: () => void): this {
    if (this.closed) throw codeError(Error, "ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running");
    this.closed = true;
    if (this.at) this.net.unbind(this.at);
    setImmediate(() => {
      this.emit("close");
      cb?.();
    });
    return this;
  }
}
