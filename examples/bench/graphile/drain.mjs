// graphile-worker 0.18.0 (pinned in package.json) as a PostgreSQL job
// queue, the peer of examples/bench/postgres.sh: in the database at
// $DATABASE_URL (its own `graphile_worker` schema), N trivial jobs (default
// 10,000; each adds one to a number) added in one bulk call, then drained
// by one worker at concurrency 8, logging off. Prints one line: jobs/s.
//   DATABASE_URL=postgres://… node drain.mjs [N]
import { Logger, makeWorkerUtils, run } from "graphile-worker";

const connectionString = process.env.DATABASE_URL;
const n = Number(process.argv[2] ?? 10000);
const logger = new Logger(() => () => {});
const utils = await makeWorkerUtils({ connectionString, logger });
await utils.migrate();
const jobs = Array.from({ length: n }, (_, i) => ({ identifier: "add_one", payload: { value: i } }));
const added = performance.now();
await utils.addJobs(jobs);
const enqueued = performance.now();

let done = 0;
let finish;
const drained = new Promise((resolve) => (finish = resolve));
const runner = await run({
  connectionString,
  concurrency: 8,
  noHandleSignals: true,
  logger,
  taskList: {
    add_one: async ({ value }) => {
      if (typeof value !== "number") throw new Error("not a number");
      if (++done === n) finish();
    },
  },
});
await drained;
const secs = (performance.now() - enqueued) / 1000;
await runner.stop();
await utils.release();
const enqueue = ((enqueued - added) / 1000).toFixed(2);
console.log(
  `graphile-worker 0.18.0: ${n} jobs (added in bulk in ${enqueue} s) drained at concurrency 8 in ${secs.toFixed(2)} s: ${Math.round(n / secs)} jobs/s`,
);
