// Tabs with the ARIA tabs pattern: arrow keys move between tabs, one panel shown.
import { html } from "htm/preact";

export function Tabs({ tabs, current, onChange, label, children }) {
  const move = (event, index) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = tabs[(index + step + tabs.length) % tabs.length];
    onChange(next.id);
    requestAnimationFrame(() => document.getElementById(`tab-${next.id}`)?.focus());
  };
  return html`<div class="tabs">
    <div role="tablist" aria-label=${label}>
      ${tabs.map(
        (tab, index) => html`<button
          type="button"
          role="tab"
          key=${tab.id}
          id=${`tab-${tab.id}`}
          aria-selected=${tab.id === current ? "true" : "false"}
          aria-controls=${`panel-${tab.id}`}
          tabindex=${tab.id === current ? "0" : "-1"}
          onClick=${() => onChange(tab.id)}
          onKeyDown=${(e) => move(e, index)}
        >
          ${tab.label}
        </button>`,
      )}
    </div>
    <div role="tabpanel" id=${`panel-${current}`} aria-labelledby=${`tab-${current}`} class="tab-panel">${children}</div>
  </div>`;
}
