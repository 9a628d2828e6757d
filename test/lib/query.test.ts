import { expect } from "chai";
import fc from "fast-check";
import {
  digestMayMatch,
  MAX_DIGEST_VALUES,
  matchesMetadata,
  metadataDigest,
  parseMetadataQuery,
  type MetadataClause,
} from "../../lib/query";

describe("lib/query: the metadata search digest", () => {
  it("never rules out a session that matches (no false negatives), for any metadata and clause", () => {
    const leaf = fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.integer(),
      fc.boolean(),
      fc.double({ noNaN: true }),
    );
    const metadata = fc.dictionary(
      fc.string({ maxLength: 6 }),
      fc.oneof(
        leaf,
        fc.dictionary(fc.string({ maxLength: 4 }), leaf, { maxKeys: 5 }),
        fc.array(leaf, { maxLength: 3 }),
      ),
      { maxKeys: 12 },
    );
    fc.assert(
      fc.property(
        metadata,
        fc.array(fc.string({ maxLength: 6 }), { minLength: 1, maxLength: 2 }),
        fc.string({ maxLength: 8 }),
        (meta, path, value) => {
          // A clause taken from the metadata itself where possible, else an arbitrary one.
          let node: unknown = meta;
          for (const key of path)
            node = node && typeof node === "object" ? (node as Record<string, unknown>)[key] : undefined;
          const clause: MetadataClause = {
            path,
            value: node !== undefined && typeof node !== "object" ? String(node) : value,
          };
          if (matchesMetadata(meta, [clause]))
            expect(digestMayMatch(metadataDigest(meta), [clause])).to.equal(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("rules out sessions whose values differ, so a q that matches nothing reads no metadata", () => {
    const digest = metadataDigest({ order: "42", customer: { tier: "gold", vip: true, n: 7 } });
    expect(digestMayMatch(digest, parseMetadataQuery("user_metadata['order']:'42'"))).to.equal(true);
    expect(
      digestMayMatch(
        digest,
        parseMetadataQuery("user_metadata['customer']['vip']:true AND user_metadata['customer']['n']:7"),
      ),
    ).to.equal(true);
    expect(digestMayMatch(digest, parseMetadataQuery("user_metadata['order']:'43'"))).to.equal(false);
    expect(digestMayMatch(digest, parseMetadataQuery("user_metadata['tier']:'gold'"))).to.equal(false);
    // About 12 bytes a value.
    expect(digest.length).to.be.below(4 * 12 + 4);
  });

  it("holds at most MAX_DIGEST_VALUES values, and marks a larger metadata so its sessions are checked in full", () => {
    const big = Object.fromEntries(
      Array.from({ length: MAX_DIGEST_VALUES + 5 }, (_, i) => [`k${String(i).padStart(2, "0")}`, `v${i}`]),
    );
    const digest = metadataDigest(big);
    expect(digest.split(" ")).to.have.length(MAX_DIGEST_VALUES + 1);
    // A value past the first 32 (in key order) is not in the digest, yet the session is not ruled out.
    expect(
      digestMayMatch(
        digest,
        parseMetadataQuery(`user_metadata['k${MAX_DIGEST_VALUES + 2}']:'v${MAX_DIGEST_VALUES + 2}'`),
      ),
    ).to.equal(true);
    // A session stored before digests existed is checked in full too.
    expect(digestMayMatch(undefined, parseMetadataQuery("user_metadata['a']:'b'"))).to.equal(true);
  });
});
