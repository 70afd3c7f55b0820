// React Flow (v12) keeps each node's measured size on the node object the
// page passes in. Nodes rebuilt from the page's own state (as both
// drawings do, on every event or edit) must carry their last measured size,
// or they are hidden until measured again; this keeps the sizes.
import { useCallback, useState } from "react";
import type { NodeChange } from "@xyflow/react";

export type Sizes = Map<string, { width: number; height: number }>;

export function useMeasured(): [Sizes, (changes: NodeChange[]) => void] {
  const [sizes, setSizes] = useState<Sizes>(new Map());
  const onChanges = useCallback((changes: NodeChange[]) => {
    const measured = changes.flatMap((c) =>
      c.type === "dimensions" && c.dimensions ? [[c.id, c.dimensions] as const] : [],
    );
    if (measured.length === 0) return;
    setSizes((prior) => {
      const next = new Map(prior);
      for (const [id, size] of measured) next.set(id, size);
      return next;
    });
  }, []);
  return [sizes, onChanges];
}
