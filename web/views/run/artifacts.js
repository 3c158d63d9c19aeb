// The run's artifacts: size, expiry, a text preview, one file or all as a ZIP; expired ones shown as gone.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import * as api from "../../api.js";
import { formatRelative, formatTime } from "../../lib/format.js";
import { showError } from "../../store.js";

/** "512 B", "3.2 KB", "1.4 MB". */
export function formatBytes(size) {
  if (size === null || size === undefined) return "—";
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

const filePath = (runId, a) =>
  `/runs/${encodeURIComponent(runId)}/artifacts/${encodeURIComponent(a.step)}/${a.path.split("/").map(encodeURIComponent).join("/")}`;

/** On AWS a plain link cannot be signed: ask the API for the presigned URL, then open it. */
function signedDownload(path) {
  if (!api.signedIn()) return undefined;
  return (event) => {
    event.preventDefault();
    api.openLink(path).catch((error) => showError(error, "download"));
  };
}

export function ArtifactsTab({ run }) {
  const [list, setList] = useState(null);
  const [previews, setPreviews] = useState({});
  useEffect(() => {
    api
      .get(`/runs/${encodeURIComponent(run.run_id)}/artifacts`)
      .then(setList)
      .catch((error) => showError(error, "artifacts"));
  }, [run.run_id, run.status]);
  if (!list) return html`<p class="loading">Loading artifacts…</p>`;
  const rows = list.artifacts ?? [];
  if (rows.length === 0) return html`<p class="muted">This run has no artifacts.</p>`;
  const zipPath = `/runs/${encodeURIComponent(run.run_id)}/artifacts.zip`;
  const preview = async (a) => {
    const key = `${a.step}/${a.path}`;
    try {
      const answer = await api.get(`${filePath(run.run_id, a)}?preview=true`);
      setPreviews((p) => ({ ...p, [key]: answer.preview + (answer.truncated ? "\n…" : "") }));
    } catch (error) {
      setPreviews((p) => ({ ...p, [key]: `(${error.message})` }));
    }
  };
  return html`<div class="artifacts">
    ${rows.some((a) => !a.expired) &&
    html`<p><a class="button" href=${api.apiUrl(zipPath)} download onClick=${signedDownload(zipPath)}>
      Download all as ZIP
    </a></p>`}
    <table>
      <thead><tr><th scope="col">Step</th><th scope="col">Path</th><th scope="col">Size</th><th scope="col">Expires</th><th scope="col">Actions</th></tr></thead>
      <tbody>
        ${rows.map((a) => {
          const key = `${a.step}/${a.path}`;
          return html`<tr key=${key} class=${a.expired ? "expired" : ""} data-artifact=${key}>
            <td>${a.step}</td>
            <td><code>${a.path}</code></td>
            <td>${formatBytes(a.size)}</td>
            <td>${a.expired ? html`<strong>Expired</strong> (gone since ${formatTime(a.expires_at)})` : `${formatTime(a.expires_at)} (${formatRelative(a.expires_at)})`}</td>
            <td>
              ${!a.expired &&
              html`<a href=${api.apiUrl(filePath(run.run_id, a))} download onClick=${signedDownload(filePath(run.run_id, a))} aria-label=${`Download ${a.path}`}>Download</a>
                <button type="button" class="link" onClick=${() => preview(a)} aria-label=${`Preview ${a.path}`}>Preview</button>`}
            </td>
          </tr>${previews[key] !== undefined &&
          html`<tr key=${`${key}-preview`}><td colspan="5"><pre class="preview">${previews[key]}</pre></td></tr>`}`;
        })}
      </tbody>
    </table>
  </div>`;
}
