// Where each box goes: ELK's layered layout (elkjs), left to right, with
// compound boxes sized around their children. Positions of children are
// relative to their parent, as the drawing wants them.
import ELK, { type ElkNode } from "elkjs/lib/elk.bundled.js";
import type { Drawing } from "./model";

/// How a drawing is fitted into view: whole, never enlarged, and never so
/// small that its text cannot be read (pan for the rest).
export const FIT = { maxZoom: 1, minZoom: 0.5, padding: 0.1 };

export const BOX_WIDTH = 190;
export const BOX_HEIGHT = 64;

export interface Placed {
  x: number;
  y: number;
  width: number;
  height: number;
}

const elk = new ELK();

/// Sizes of boxes that are not the standard one (by id).
export type Sizes = (id: string) => { width: number; height: number } | undefined;

export async function layout(d: Drawing, sizes?: Sizes): Promise<Map<string, Placed>> {
  const nodes = new Map<string, ElkNode>();
  const root: ElkNode = {
    id: "__root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "RIGHT",
      "elk.hierarchyHandling": "INCLUDE_CHILDREN",
      "elk.layered.spacing.nodeNodeBetweenLayers": "120",
      "elk.spacing.nodeNode": "30",
    },
    children: [],
    edges: [],
  };
  for (const box of d.boxes) {
    const node: ElkNode = box.compound
      ? {
          id: box.id,
          children: [],
          layoutOptions: { "elk.padding": "[top=36,left=16,bottom=16,right=16]" },
        }
      : { id: box.id, width: BOX_WIDTH, height: BOX_HEIGHT, ...sizes?.(box.id) };
    nodes.set(box.id, node);
    const parent = box.parent ? nodes.get(box.parent) : root;
    (parent ?? root).children!.push(node);
  }
  root.edges = d.arrows
    .filter((a) => nodes.has(a.source) && nodes.has(a.target))
    .map((a) => ({ id: a.id, sources: [a.source], targets: [a.target] }));
  const laid = await elk.layout(root);
  const placed = new Map<string, Placed>();
  const visit = (n: ElkNode) => {
    for (const c of n.children ?? []) {
      placed.set(c.id, { x: c.x ?? 0, y: c.y ?? 0, width: c.width ?? 0, height: c.height ?? 0 });
      visit(c);
    }
  };
  visit(laid);
  return placed;
}
