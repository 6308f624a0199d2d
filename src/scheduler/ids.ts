import { randomBytes } from "node:crypto";

/**
 * Ids that are cheap on the hot path: a random prefix per process start and a counter. Unique across
 * restarts because the prefix changes; short, so a million of them cost little memory.
 */
export class IdGenerator {
  private readonly prefix: string;
  private counter = 0;

  constructor() {
    this.prefix = randomBytes(5).toString("hex");
  }

  next(kind: string): string {
    return `${kind}${this.prefix}${(this.counter++).toString(36)}`;
  }
}
