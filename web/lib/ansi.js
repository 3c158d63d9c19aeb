// ANSI colours as HTML through ansi_up (it escapes the text: a log line never becomes markup),
// cached per line so scrolling back over a long log redraws without re-parsing.

import { AnsiUp } from "ansi_up";

const MAX_CACHED = 5000;

/** Renders log lines to HTML; each line starts with the terminal's default colours. */
export class AnsiCache {
  constructor(limit = MAX_CACHED) {
    this.limit = limit;
    this.cache = new Map();
  }

  html(text) {
    let html = this.cache.get(text);
    if (html !== undefined) {
      // Most recently used last: Map keeps insertion order, so the oldest is the first key.
      this.cache.delete(text);
      this.cache.set(text, html);
      return html;
    }
    // One converter per line: ansi_up carries colour state from one call to the next.
    const converter = new AnsiUp();
    converter.use_classes = true;
    html = converter.ansi_to_html(text);
    this.cache.set(text, html);
    if (this.cache.size > this.limit) this.cache.delete(this.cache.keys().next().value);
    return html;
  }
}
