/** Tables, number formats and percentiles for the benchmarks' text and Markdown output. */

export type Cell = string | number;

function cellText(cell: Cell): string {
  return typeof cell === "number" ? String(cell) : cell;
}

/** A plain-text table with aligned columns (numbers right-aligned). */
export function textTable(headers: string[], rows: Cell[][]): string {
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...rows.map((row) => cellText(row[i] ?? "").length)),
  );
  const line = (cells: Cell[]) =>
    cells
      .map((cell, i) => {
        const text = cellText(cell ?? "");
        return typeof cell === "number" || /^[\d.,x%<>=-]+( ms| KiB| MB| B)?$/.test(text)
          ? text.padStart(widths[i])
          : text.padEnd(widths[i]);
      })
      .join("  ")
      .trimEnd();
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** A GitHub-flavoured Markdown table. */
export function markdownTable(headers: string[], rows: Cell[][]): string {
  const escape = (cell: Cell) => cellText(cell ?? "").replace(/\|/g, "\\|");
  return [
    `| ${headers.join(" | ")} |`,
    `| ${headers.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.map(escape).join(" | ")} |`),
  ].join("\n");
}

export const round = (value: number, digits = 2): number => {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
};

export const ms = (value: number): string => `${round(value, value < 10 ? 2 : 1)} ms`;

export const bytes = (value: number): string =>
  value >= 1024 * 1024
    ? `${round(value / (1024 * 1024), 2)} MB`
    : value >= 1024
      ? `${round(value / 1024, 1)} KiB`
      : `${value} B`;

/** Percentile of sorted values (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}
