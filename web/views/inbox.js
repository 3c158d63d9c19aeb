// The inbox (`#/inbox`): approvals waiting for the signed-in person, decided inline with a comment.
import { html } from "htm/preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { get, post } from "../api.js";
import { formatRelative, formatTime } from "../lib/format.js";
import { showError, useStore, user } from "../store.js";
import { RunLink } from "./common.js";

// New requests show up without a reload; the inbox is one Query per read.
const REFRESH_MS = 5000;

function OutputsSoFar({ run, step }) {
  if (!run) return html`<p class="muted">Loading the run…</p>`;
  const earlier = run.steps.filter((s) => s.id !== step && s.outputs && Object.keys(s.outputs).length > 0);
  if (earlier.length === 0) return html`<p class="muted">No step has published outputs yet.</p>`;
  return html`
    <div>
      ${earlier.map(
        (s) => html`
          <div key=${s.id}>
            <h3>Outputs of <code>${s.id}</code></h3>
            <pre class="json" tabindex="0" aria-label=${`Outputs of ${s.id}`}>${JSON.stringify(s.outputs, null, 2)}</pre>
          </div>
        `,
      )}
    </div>
  `;
}

function ApprovalCard({ item, onDecided }) {
  const [run, setRun] = useState(null);
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    get(`/runs/${encodeURIComponent(item.run_id)}`)
      .then(setRun)
      .catch((error) => showError(error, item.run_id));
  }, [item.run_id]);
  const decide = async (decision) => {
    setBusy(true);
    try {
      const path = `/runs/${encodeURIComponent(item.run_id)}/steps/${encodeURIComponent(item.step)}/${decision}`;
      await post(path, { comment: comment.trim() || undefined });
      onDecided(item, decision);
    } catch (error) {
      showError(error, `${decision} ${item.step}`);
    } finally {
      setBusy(false);
    }
  };
  const commentId = `comment-${item.run_id}-${item.step}`;
  const label = `${item.step} of ${item.run_id}`;
  return html`
    <article class="card" data-approval=${`${item.run_id}/${item.step}`} aria-label=${`Approval ${label}`}>
      <header>
        <h2>${item.workflow ?? run?.workflow ?? "workflow"} · <code>${item.step}</code></h2>
        <span>run <${RunLink} id=${item.run_id} /></span>
      </header>
      <p class="message">${item.message || "(no message)"}</p>
      <dl class="facts">
        <dt>Progress</dt>
        <dd>${item.approved ?? 0} of ${item.min_approvals ?? 1} approvals</dd>
        <dt>Who may decide</dt>
        <dd>${item.who_may_decide || "—"}</dd>
        <dt>Deadline</dt>
        <dd>${item.deadline ? html`<time datetime=${item.deadline} title=${formatTime(item.deadline)}>${formatRelative(item.deadline)}</time>` : "none"}</dd>
        <dt>Requested</dt>
        <dd>${item.requested_at ? formatTime(item.requested_at) : "—"}</dd>
      </dl>
      <${OutputsSoFar} run=${run} step=${item.step} />
      <div class="field">
        <label for=${commentId}>Comment</label>
        <textarea id=${commentId} rows="2" cols="60" value=${comment} onInput=${(e) => setComment(e.currentTarget.value)} />
      </div>
      <div class="row">
        <button type="button" class="primary" disabled=${busy} aria-label=${`Approve ${label}`} onClick=${() => decide("approve")}>
          Approve
        </button>
        <button type="button" class="danger" disabled=${busy} aria-label=${`Reject ${label}`} onClick=${() => decide("reject")}>
          Reject
        </button>
      </div>
    </article>
  `;
}

export default function InboxView() {
  const who = useStore(user);
  const [items, setItems] = useState(null);
  const [done, setDone] = useState([]);
  const load = useCallback(
    () =>
      get("/inbox")
        .then((answer) => setItems(answer.approvals ?? []))
        .catch((error) => {
          showError(error, "inbox");
          setItems((old) => old ?? []);
        }),
    [who],
  );
  useEffect(() => {
    setItems(null);
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => clearInterval(timer);
  }, [load]);
  const decided = (item, decision) => {
    setItems((list) => list.filter((i) => !(i.run_id === item.run_id && i.step === item.step)));
    setDone((list) => [...list, `${decision === "approve" ? "Approved" : "Rejected"} ${item.step} of run ${item.run_id}.`]);
  };
  return html`
    <section>
      <h1>Inbox</h1>
      <p class="muted">Approvals waiting for ${who ? html`<strong>${who}</strong>` : "you (no user chosen: pick one above)"}.</p>
      <div role="status" aria-live="polite">${done.map((text) => html`<p key=${text}>${text}</p>`)}</div>
      ${items === null
        ? html`<p class="loading">Loading…</p>`
        : items.length === 0
          ? html`<p>Nothing is waiting for you.</p>`
          : items.map((item) => html`<${ApprovalCard} key=${`${item.run_id}/${item.step}`} item=${item} onDecided=${decided} />`)}
    </section>
  `;
}
