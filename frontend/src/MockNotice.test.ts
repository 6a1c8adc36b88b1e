import { describe, expect, it } from "vitest";
import { fetchMockUpstream } from "./MockNotice";

function answering(status: number, body: string): typeof fetch {
  return (async () => new Response(body, { status, headers: { "Content-Type": "application/json" } })) as typeof fetch;
}

describe("fetchMockUpstream", () => {
  it("is true only when the gateway says mock", async () => {
    expect(await fetchMockUpstream(answering(200, '{"mock":true}'))).toBe(true);
    expect(await fetchMockUpstream(answering(200, '{"mock":false}'))).toBe(false);
  });

  it("says nothing when the answer is not the gateway's", async () => {
    expect(await fetchMockUpstream(answering(200, "<!doctype html><html></html>"))).toBe(false);
    expect(await fetchMockUpstream(answering(404, '{"mock":true}'))).toBe(false);
    const failing = (async () => {
      throw new TypeError("network");
    }) as typeof fetch;
    expect(await fetchMockUpstream(failing)).toBe(false);
  });
});
