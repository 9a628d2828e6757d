/**
 * What a phase of `npm run bench` is: it measures one thing on what `setUp` started, and says
 * which targets its figures meet. The orchestrator (run.ts) runs the phases in turn, gathers their
 * verdicts into the targets table, and hands their results to the report.
 *
 * A new phase is a module under bench/phases that exports
 * `const fooPhase = { run, verdicts } satisfies Phase<FooResult>` (a phase that needs an earlier
 * phase's figures is made by a function of them, like `profilePhase`; phases never import each
 * other). Then: its run and its verdict rows in run.ts, its targets in verdicts.ts, and its result
 * in the report's input, tables and results.json (report.ts).
 */
import type { BenchContext } from "./setup";
import type { TargetCheck } from "./verdicts";

export interface Phase<Result> {
  run(ctx: BenchContext): Promise<Result>;
  /** Its rows of the targets table; a phase that only reports has none. */
  verdicts?(result: Result, ctx: BenchContext): TargetCheck[];
}
