// One status as the icon, its colour and the word (colour is never the only signal).
import { html } from "htm/preact";
import { statusIconSvg, statusInfo } from "../../lib/status.js";

export function StatusBadge({ status, size = 16 }) {
  const info = statusInfo(status);
  return html`<span class="status-badge" style=${`color:${info.color}`}>
    <span class="status-icon-wrap" dangerouslySetInnerHTML=${{ __html: statusIconSvg(status, size) }}></span>
    <span class="status-word">${info.word}</span>
  </span>`;
}
