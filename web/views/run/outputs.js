// Every step's published outputs as one JSON document, like the product documents' example.
import { html } from "htm/preact";

export function OutputsTab({ run }) {
  const outputs = Object.fromEntries(
    (run.steps ?? []).filter((s) => Object.keys(s.outputs ?? {}).length > 0).map((s) => [s.id, s.outputs]),
  );
  if (Object.keys(outputs).length === 0) return html`<p class="muted">No step has published outputs yet.</p>`;
  return html`<pre class="json outputs" tabindex="0" aria-label="Step outputs">${JSON.stringify(outputs, null, 2)}</pre>`;
}
