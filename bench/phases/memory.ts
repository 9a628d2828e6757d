/**
 * Redis memory per session: MEMORY USAGE of the records the create runs made and of the ones
 * released since, the per-entry cost of the project indexes (small and large project), and the
 * all-in growth of used_memory while the release pool was seeded.
 */
import { keys } from "../../lib/store";
import { bytes, round } from "../format";
import type { Phase } from "../phase";
import { log } from "../settings";
import { TARGETS } from "../verdicts";
import { PROJECTS } from "../workload";

interface IndexCost {
  bytesPerSession: number;
  entries: number;
  encodings: string;
}

export interface MemoryResult {
  recordBytes: number;
  recordEncoding: string;
  recordFields: number;
  releasedRecordBytes?: number;
  indexSmallProject: IndexCost;
  indexLargeProject: IndexCost;
  perSessionSmallProject: number;
  perSessionLargeProject: number;
  usedMemoryPerSeededSession: number;
}

export const memoryPhase = {
  async run({ admin, releases, seeded }) {
    log("measuring Redis memory per session");
    const memoryUsage = async (key: string) =>
      Number(await admin.call("MEMORY", "USAGE", key, "SAMPLES", "0"));
    const createdIds = await admin.zrange(keys.active(PROJECTS.create), "0", "199");
    let recordSum = 0;
    for (const id of createdIds) recordSum += await memoryUsage(keys.session(PROJECTS.create, id));
    const sampleRecordKey = keys.session(PROJECTS.create, createdIds[0]);
    const recordEncoding = String(await admin.call("OBJECT", "ENCODING", sampleRecordKey));
    const recordFields = await admin.hlen(sampleRecordKey);
    const released = releases.ids.slice(0, Math.min(200, releases.cursor));
    let releasedSum = 0;
    for (const id of released) releasedSum += await memoryUsage(keys.session(PROJECTS.release, id));
    const indexPerEntry = async (projectId: string): Promise<IndexCost> => {
      let total = 0;
      let entries = 0;
      const encodings: string[] = [];
      for (const key of [keys.active(projectId), keys.sessions(projectId)]) {
        const card = await admin.zcard(key);
        if (card === 0) continue;
        total += (await memoryUsage(key)) / card;
        entries = Math.max(entries, card);
        encodings.push(String(await admin.call("OBJECT", "ENCODING", key)));
      }
      return { bytesPerSession: round(total, 1), entries, encodings: [...new Set(encodings)].join("/") };
    };
    const smallIndex = await indexPerEntry(PROJECTS.list);
    const largeIndex = await indexPerEntry(PROJECTS.create);
    const recordBytes = round(recordSum / createdIds.length, 1);
    return {
      recordBytes,
      recordEncoding,
      recordFields,
      releasedRecordBytes: released.length ? round(releasedSum / released.length, 1) : undefined,
      indexSmallProject: smallIndex,
      indexLargeProject: largeIndex,
      perSessionSmallProject: round(recordBytes + smallIndex.bytesPerSession, 0),
      perSessionLargeProject: round(recordBytes + largeIndex.bytesPerSession, 0),
      usedMemoryPerSeededSession: round(seeded.usedMemoryBytes / seeded.sessions, 0),
    };
  },

  verdicts(memory) {
    return [
      {
        name: "Redis memory per session (record + index entries, large project)",
        target: `< ${bytes(TARGETS.sessionBytes)}`,
        measured: `${memory.perSessionLargeProject} B`,
        met: memory.perSessionLargeProject < TARGETS.sessionBytes,
      },
    ];
  },
} satisfies Phase<MemoryResult>;
