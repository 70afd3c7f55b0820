// Small pieces the pages share: loading a resource, showing its failure,
// state badges and times.
import { useCallback, useEffect, useState } from "react";

/// Load with `load` now and every `everyMs` (0: once); the latest value,
/// the latest failure, and a function to load again.
export function usePolled<T>(load: () => Promise<T>, everyMs: number, deps: unknown[]) {
  const [value, setValue] = useState<T>();
  const [error, setError] = useState<string>();
  const reload = useCallback(load, deps);
  const run = useCallback(() => {
    reload().then(
      (v) => {
        setValue(v);
        setError(undefined);
      },
      (e: unknown) => setError(e instanceof Error ? e.message : String(e)),
    );
  }, [reload]);
  useEffect(() => {
    run();
    if (!everyMs) return;
    const timer = setInterval(run, everyMs);
    return () => clearInterval(timer);
  }, [run, everyMs]);
  return { value, error, reload: run };
}

export function Failure({ error }: { error?: string }) {
  return error ? (
    <p role="alert" className="failure">
      {error}
    </p>
  ) : null;
}

export function State({ state }: { state: string }) {
  return <span className={`state state-${state}`}>{state}</span>;
}

export function time(ms: number): string {
  return new Date(ms).toLocaleString();
}

export function Json({ value }: { value: unknown }) {
  return <pre className="json">{JSON.stringify(value, null, 2)}</pre>;
}
