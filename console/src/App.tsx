// The console's frame: navigation, the token form, and the page the URL
// names.
import { useEffect, useState, type FormEvent } from "react";
import { setToken, token, UNAUTHORIZED } from "./api/client";
import { href, useRoute } from "./route";
import { Runs } from "./pages/Runs";
import { Run } from "./pages/Run";
import { Tasks } from "./pages/Tasks";
import { Plugins } from "./pages/Plugins";
import { Graphs } from "./pages/Graphs";
import { Editor } from "./pages/Editor";
import { Metrics } from "./pages/Metrics";

export function App() {
  const route = useRoute();
  const [asking, setAsking] = useState(false);
  // A new token remounts the page, which then reads again with it.
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    const ask = () => setAsking(true);
    window.addEventListener(UNAUTHORIZED, ask);
    return () => window.removeEventListener(UNAUTHORIZED, ask);
  }, []);

  const section = route[0] ?? "runs";
  return (
    <>
      <header className="bar">
        <a className="brand" href={href("runs")}>
          Weft
        </a>
        <nav aria-label="Sections">
          <a href={href("runs")} aria-current={section === "runs" ? "page" : undefined}>
            Runs
          </a>
          <a
            href={href("graphs")}
            aria-current={section === "graphs" || section === "editor" ? "page" : undefined}
          >
            Graphs
          </a>
          <a href={href("tasks")} aria-current={section === "tasks" ? "page" : undefined}>
            Tasks
          </a>
          <a href={href("plugins")} aria-current={section === "plugins" ? "page" : undefined}>
            Plugins
          </a>
          <a href={href("metrics")} aria-current={section === "metrics" ? "page" : undefined}>
            Metrics
          </a>
        </nav>
        <button type="button" className="token-button" onClick={() => setAsking(true)}>
          {token() ? "Token ✓" : "Token"}
        </button>
      </header>
      {asking && (
        <TokenForm
          onDone={() => {
            setAsking(false);
            setGeneration((g) => g + 1);
          }}
        />
      )}
      <main key={generation}>
        <Page route={route} />
      </main>
    </>
  );
}

function Page({ route }: { route: string[] }) {
  const [section, id] = route;
  switch (section ?? "runs") {
    case "runs":
      return id ? <Run runId={id} /> : <Runs />;
    case "tasks":
      return <Tasks selected={id} />;
    case "plugins":
      return <Plugins />;
    case "graphs":
      return <Graphs />;
    case "metrics":
      return <Metrics />;
    case "editor":
      // Remounted per graph: nothing of one carries into another.
      return <Editor key={id ?? ""} name={id} />;
    default:
      return <p role="alert">No page here: {route.join("/")}</p>;
  }
}

function TokenForm({ onDone }: { onDone: () => void }) {
  const [value, setValue] = useState(token() ?? "");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setToken(value.trim() || null);
    onDone();
  };
  return (
    <form className="token-form" onSubmit={submit} aria-label="Token">
      <p>This daemon needs a token: the one your operator gave you (kept for this tab only).</p>
      <label>
        Token{" "}
        <input
          type="password"
          autoComplete="off"
          autoFocus
          value={value}
          onChange={(e) => setValue(e.target.value)}
        />
      </label>
      <button type="submit">Use token</button>
    </form>
  );
}
