// bcrypt verifications, a few at a time: a flood of wrong passwords would otherwise occupy every
// core and make a right login wait seconds. Clients without recent failures go first, the newest
// of them first (a burst of first guesses from many addresses must not queue a login that arrives
// after it: it waits for one verification, not for the burst), and the queues are bounded: a check
// that cannot even wait its turn is refused at once ("busy").

export class VerifyBusy extends Error {
  constructor() {
    super("too many logins are being checked right now");
    this.name = "VerifyBusy";
  }
}

export interface VerifyQueueOptions {
  /** Verifications running at once. */
  concurrency?: number;
  /** Waiting checks of clients without recent failures. */
  maxUrgent?: number;
  /** Waiting checks of clients that failed recently. */
  maxOther?: number;
}

export function createVerifyQueue(o: VerifyQueueOptions = {}) {
  const concurrency = o.concurrency ?? 2;
  const urgent: Array<() => void> = [];
  const other: Array<() => void> = [];
  const limits = { urgent: o.maxUrgent ?? 64, other: o.maxOther ?? 8 };
  let running = 0;

  return {
    /** Runs `fn` when a slot is free; `first` puts it ahead of every check marked otherwise. */
    async run<T>(first: boolean, fn: () => Promise<T>): Promise<T> {
      if (running < concurrency) running++;
      else {
        const q = first ? urgent : other;
        if (q.length >= (first ? limits.urgent : limits.other)) throw new VerifyBusy();
        // The slot is handed over by the check that finishes, so `running` stays as it is.
        await new Promise<void>((resolve) => q.push(resolve));
      }
      try {
        return await fn();
      } finally {
        const next = urgent.pop() ?? other.shift();
        if (next) next();
        else running--;
      }
    },
    get waiting() {
      return urgent.length + other.length;
    },
  };
}
