/**
 * What a phase of `npm run bench` is: it measures one thing on what `setUp` started, and says
 * which targets its figures meet. The orchestrator (run.ts) runs the phases in turn, gathers their
 * verdicts into the targets table, and hands their results to the report.
 */
import type { BenchContext } from "./setup";
import type { TargetCheck } from "./verdicts";

export interface Phase<Result> {
  run(ctx: BenchContext): Promise<Result>;
  /** Its rows of the targets table; a phase that only reports has none. */
  verdicts?(result: Result, ctx: BenchContext): TargetCheck[];
}
