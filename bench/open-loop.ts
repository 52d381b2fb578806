/**
 * An open-loop HTTP load generator: request i is due at t0 + i / rate, whatever happened to the
 * ones before it, and its latency counts from when it was due. A server that stalls is charged for
 * every request the stall delays, and requests arrive evenly spaced, as from many independent
 * users. (autocannon's `overallRate` does neither: each connection sends its share of every second
 * back to back and then waits for the next second, and its correction for the requests it held
 * back assumes one every millisecond.) Requests go over at most `connections` keep-alive sockets
 * (node:http's Agent); one that finds them all busy waits for a free one, on its own clock.
 */
import { Agent, get } from 'node:http';

export interface OpenLoopResult {
  /** Requests answered per second over the run. */
  achieved: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Requests that failed at the socket. */
  errors: number;
  /** Answers whose status was not 2xx. */
  non2xx: number;
}

/** Sends `rate` requests per second for `seconds`, cycling through `paths` on `base`. */
export async function openLoop(base: string, paths: readonly string[], rate: number, connections: number, seconds: number): Promise<OpenLoopResult> {
  if (!(rate > 0) || !(seconds > 0) || paths.length === 0) throw new Error('openLoop needs a positive rate and duration and at least one path');
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const total = Math.max(1, Math.round(rate * seconds));
  const latencies = new Float64Array(total);
  let errors = 0;
  let non2xx = 0;
  let finished = 0;
  const t0 = performance.now() + 20;
  const due = (i: number) => t0 + (i * 1000) / rate;
  try {
    await new Promise<void>((resolve) => {
      const settle = (i: number) => {
        latencies[i] = performance.now() - due(i);
        if (++finished === total) resolve();
      };
      const send = (i: number) => {
        get(base + paths[i % paths.length], { agent }, (res) => {
          if (res.statusCode! < 200 || res.statusCode! >= 300) non2xx++;
          res.resume();
          res.on('end', () => settle(i));
        }).on('error', () => {
          errors++;
          settle(i);
        });
      };
      let sent = 0;
      // Timers fire late by up to a millisecond or so: every tick sends all that have come due.
      const tick = () => {
        const now = performance.now();
        while (sent < total && due(sent) <= now) send(sent++);
        if (sent < total) setTimeout(tick, Math.max(0, due(sent) - performance.now()));
      };
      setTimeout(tick, Math.max(0, t0 - performance.now()));
    });
  } finally {
    agent.destroy();
  }
  const elapsed = performance.now() - t0;
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.min(total - 1, Math.floor(q * total))] * 10) / 10;
  return { achieved: (total - errors) / (elapsed / 1000), p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1), errors, non2xx };
}
