import { useEffect, useState } from "react";
import "./MockNotice.css";

/** Whether the gateway's answers come from spool's built-in mock model.
 *  GET /upstream answers {"mock": true} under `spool dev` without an
 *  OPENAI_API_KEY; anything else (nginx serving the page there, an older
 *  gateway, an error) means "say nothing". */
export async function fetchMockUpstream(fetcher: typeof fetch = fetch): Promise<boolean> {
  try {
    const response = await fetcher("/upstream", { headers: { Accept: "application/json" } });
    if (!response.ok) return false;
    const body: unknown = await response.json();
    return typeof body === "object" && body !== null && (body as { mock?: unknown }).mock === true;
  } catch {
    return false;
  }
}

export function MockNotice() {
  const [mock, setMock] = useState(false);
  useEffect(() => {
    let live = true;
    void fetchMockUpstream().then((value) => live && setMock(value));
    return () => {
      live = false;
    };
  }, []);
  if (!mock) return null;
  return (
    <p className="mock-notice" data-testid="mock-notice" role="note">
      Answers come from spool's built-in mock model, not a real one: start <code>spool dev</code> with{" "}
      <code>OPENAI_API_KEY</code> set for a real model.
    </p>
  );
}
