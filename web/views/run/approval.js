// A waiting approval: the request, the policy's progress, who may approve, the deadline, the channels,
// View plan (earlier steps' outputs and artifact previews) and Approve / Reject with a comment.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import * as api from "../../api.js";
import { formatRelative, formatTime } from "../../lib/format.js";

function whoMayApprove(approval) {
  if (approval.who_may_decide) return approval.who_may_decide;
  const policy = approval.approvers ?? {};
  const parts = [...(policy.users ?? []), ...(policy.groups ?? []).map((g) => `group ${g}`)];
  if (policy.any_member) parts.push("any member");
  return parts.join(", ") || "anyone";
}

/** A channel's delivery as the notifier recorded it (`delivered`, `delivery_errors`). */
export function channelState(approval, channel) {
  if (channel === "inbox") return "in the inbox"; // recorded with the request itself
  const failed = (approval.delivery_errors ?? []).filter((e) => e.channel === channel);
  const delivered = approval.delivered ?? {};
  if (channel === "email" && delivered.email_to?.length) {
    return `sent to ${delivered.email_to.length}${delivered.email ? "" : " (not all yet)"}`;
  }
  if (channel === "slack" && approval.slack) return "posted";
  if (failed.length > 0) return `not delivered (${failed[failed.length - 1].error})`;
  return "pending";
}

/** Earlier steps' outputs and a preview of each of their text artifacts. */
function Plan({ run, step }) {
  const before = (run.steps ?? []).slice(0, (run.steps ?? []).findIndex((s) => s.id === step.id));
  const [previews, setPreviews] = useState({});
  const preview = async (s, path) => {
    const key = `${s}/${path}`;
    try {
      const answer = await api.get(
        `/runs/${encodeURIComponent(run.run_id)}/artifacts/${encodeURIComponent(s)}/${path
          .split("/")
          .map(encodeURIComponent)
          .join("/")}?preview=true`,
      );
      setPreviews((p) => ({ ...p, [key]: answer.preview + (answer.truncated ? "\n…" : "") }));
    } catch (error) {
      setPreviews((p) => ({ ...p, [key]: `(${error.message})` }));
    }
  };
  return html`<div class="approval-plan">
    ${before.map(
      (s) => html`<section key=${s.id}>
        <h4>${s.id}</h4>
        ${Object.keys(s.outputs ?? {}).length > 0
          ? html`<pre class="json">${JSON.stringify(s.outputs, null, 2)}</pre>`
          : html`<p class="muted">No outputs.</p>`}
        ${(s.artifacts ?? []).map((a) => {
          const path = typeof a === "string" ? a : a.path;
          const key = `${s.id}/${path}`;
          return html`<div key=${key} class="plan-artifact">
            <button type="button" class="link" onClick=${() => preview(s.id, path)}>Preview ${path}</button>
            ${previews[key] !== undefined && html`<pre class="preview">${previews[key]}</pre>`}
          </div>`;
        })}
      </section>`,
    )}
  </div>`;
}

export function ApprovalPanel({ run, step, definition, act }) {
  const approval = step.approval ?? {};
  const [comment, setComment] = useState("");
  const [showPlan, setShowPlan] = useState(false);
  const [busy, setBusy] = useState(false);
  const allowed = step.actions ?? [];
  const needed = approval.min_approvals ?? 1;
  const got = approval.approved ?? approval.approvals?.length ?? 0;
  const channels = approval.channels ?? definition?.approval?.channels ?? [];
  const commentId = `approval-comment-${step.id}`;
  const decide = async (decision) => {
    setBusy(true);
    const body = comment.trim() ? { comment: comment.trim() } : {};
    const label = `${decision === "approve" ? "Approve" : "Reject"} ${step.id}`;
    const path = `/runs/${encodeURIComponent(run.run_id)}/steps/${encodeURIComponent(step.id)}/${decision}`;
    if (await act(label, path, body)) setComment("");
    setBusy(false);
  };
  return html`<div class="approval" role="group" aria-label=${`Approval ${step.id}`}>
    <p class="approval-message">${approval.message || "Approval requested."}</p>
    <dl class="approval-facts">
      <div><dt>Progress</dt><dd class="approval-progress">${got} of ${needed} approval${needed === 1 ? "" : "s"}</dd></div>
      <div><dt>Who may approve</dt><dd>${whoMayApprove(approval)}</dd></div>
      ${approval.deadline &&
      html`<div><dt>Deadline</dt><dd>${formatTime(approval.deadline)} (${formatRelative(approval.deadline)})</dd></div>`}
      ${channels.length > 0 &&
      html`<div><dt>Channels</dt><dd>${channels.map((c) => `${c}: ${channelState(approval, c)}`).join(", ")}</dd></div>`}
      ${(approval.approvals ?? []).length > 0 &&
      html`<div><dt>Approved by</dt><dd>${approval.approvals.map((a) => a.by).join(", ")}</dd></div>`}
    </dl>
    <button type="button" aria-expanded=${showPlan ? "true" : "false"} onClick=${() => setShowPlan(!showPlan)}>
      View plan
    </button>
    ${showPlan && html`<${Plan} run=${run} step=${step} />`}
    ${allowed.includes("approve") &&
    html`<div class="approval-decide">
      <label for=${commentId}>Comment</label>
      <textarea id=${commentId} rows="2" value=${comment} onInput=${(e) => setComment(e.currentTarget.value)}></textarea>
      <button type="button" class="primary" disabled=${busy} onClick=${() => decide("approve")}>Approve</button>
      <button type="button" class="danger" disabled=${busy} onClick=${() => decide("reject")}>Reject</button>
    </div>`}
  </div>`;
}
