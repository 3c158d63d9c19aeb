// The whole compiled graph (pending steps too) laid out by dagre: edges from `needs`, nodes as real
// buttons with the status icon and word; the running step is highlighted, a click selects a step.
import dagre from "@dagrejs/dagre";
import { html } from "htm/preact";
import { useMemo } from "preact/hooks";
import { elapsedMs, formatDuration } from "../../lib/format.js";
import { StatusBadge } from "./status.js";

const NODE_WIDTH = 176;
const NODE_HEIGHT = 60;

/** Nodes and edges: the workflow's compiled graph, else the run's steps one after another. */
export function graphOf(run, workflow) {
  const steps = run.steps ?? [];
  const graph = workflow?.graph;
  if (graph?.nodes?.length) {
    return { nodes: graph.nodes.map((n) => ({ id: n.id, name: n.name ?? n.id })), edges: graph.edges ?? [] };
  }
  const nodes = steps.map((s) => ({ id: s.id, name: s.id }));
  return { nodes, edges: nodes.slice(1).map((n, i) => [nodes[i].id, n.id]) };
}

function layout({ nodes, edges }) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 44, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of nodes) g.setNode(node.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const [from, to] of edges) if (g.hasNode(from) && g.hasNode(to)) g.setEdge(from, to);
  dagre.layout(g);
  const placed = nodes.map((node) => ({ ...node, ...g.node(node.id) }));
  const lines = g.edges().map((e) => ({ key: `${e.v}->${e.w}`, points: g.edge(e).points }));
  const { width = 0, height = 0 } = g.graph();
  return { placed, lines, width, height };
}

export function Dag({ run, workflow, selected, onSelect }) {
  const graph = useMemo(() => graphOf(run, workflow), [run.steps?.length, workflow]);
  const drawn = useMemo(() => (graph.nodes.length ? layout(graph) : null), [graph]);
  const steps = new Map((run.steps ?? []).map((s) => [s.id, s]));
  if (graph.nodes.length === 0) return null; // a run not recorded yet: nothing to lay out
  return html`
    <figure class="dag" aria-label="Step graph">
      <div class="dag-canvas" style=${`width:${drawn.width}px;height:${drawn.height}px`}>
        <svg class="dag-edges" width=${drawn.width} height=${drawn.height} aria-hidden="true" focusable="false">
          <defs>
            <marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
              <path d="M0 0L10 5L0 10z" fill="#6b7684" />
            </marker>
          </defs>
          ${drawn.lines.map(
            (l) => html`<polyline
              key=${l.key}
              points=${l.points.map((p) => `${p.x},${p.y}`).join(" ")}
              fill="none"
              stroke="#6b7684"
              stroke-width="1.5"
              marker-end="url(#dag-arrow)"
            />`,
          )}
        </svg>
        ${drawn.placed.map((node) => {
          const step = steps.get(node.id) ?? { status: "pending" };
          const duration = step.started_at ? formatDuration(elapsedMs(step.started_at, step.ended_at)) : "";
          return html`<button
            type="button"
            key=${node.id}
            class=${`dag-node status-${step.status}${selected === node.id ? " selected" : ""}`}
            style=${`left:${node.x - NODE_WIDTH / 2}px;top:${node.y - NODE_HEIGHT / 2}px;width:${NODE_WIDTH}px;height:${NODE_HEIGHT}px`}
            data-step=${node.id}
            data-status=${step.status}
            aria-pressed=${selected === node.id ? "true" : "false"}
            aria-current=${step.status === "running" ? "step" : undefined}
            title=${step.not_run ? `not run: ${step.not_run}` : undefined}
            onClick=${() => onSelect(selected === node.id ? null : node.id)}
          >
            <span class="dag-name">${node.name}</span>
            <span class="dag-meta"><${StatusBadge} status=${step.status} />${duration && html` · ${duration}`}</span>
          </button>`;
        })}
      </div>
    </figure>
  `;
}
