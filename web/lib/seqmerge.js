// Orders log batches by seq: drops repeats (events arrive at least once), joins a batch's frame
// parts, and holds a batch that arrives early until the ones before it are in.

/** Merges log frames `{seq, step, lines, part?, parts?}` into whole batches in seq order. */
export class SeqMerger {
  /** `last` is the highest seq already taken in (0: none). */
  constructor(last = 0) {
    this.last = last;
    this.early = new Map(); // seq -> {step, parts: Map(part -> lines), count}
  }

  /**
   * Takes one frame; returns the whole batches now ready, in seq order (often none or one).
   * `whole`: the frame is a whole batch read back from the store (it replaces any parts held).
   */
  push(frame, whole = false) {
    const seq = Number(frame.seq);
    if (!Number.isInteger(seq) || seq <= this.last) return [];
    let entry = this.early.get(seq);
    if (!entry || whole) {
      entry = { step: frame.step, parts: new Map(), count: whole ? 1 : frame.parts || 1 };
      this.early.set(seq, entry);
    }
    entry.parts.set(whole ? 1 : frame.part || 1, frame.lines || []);
    return this.drain();
  }

  /** Whether a later batch waits on one that is missing or incomplete (a frame lost on a reconnect). */
  get stalled() {
    return this.early.size > 0;
  }

  /** Marks every seq up to `seq` as taken in by another path (a REST page); returns what that frees. */
  advanceTo(seq) {
    if (seq > this.last) this.last = seq;
    for (const key of this.early.keys()) if (key <= this.last) this.early.delete(key);
    return this.drain();
  }

  drain() {
    const ready = [];
    // "seq N+1 exists => seq N exists" (the log store): a gap only means N is still on its way.
    for (;;) {
      const entry = this.early.get(this.last + 1);
      if (!entry || entry.parts.size < entry.count) return ready;
      this.early.delete(this.last + 1);
      this.last += 1;
      const parts = [...entry.parts.keys()].sort((a, b) => a - b);
      ready.push({ seq: this.last, step: entry.step, lines: parts.flatMap((p) => entry.parts.get(p)) });
    }
  }
}
