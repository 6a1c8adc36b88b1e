import type { Status, Usage } from "./lib";

export function statusText(status: Status): string {
  switch (status.state) {
    case "connecting":
      return "connecting…";
    case "queued":
      return status.resumedAt === null ? "queued" : `queued · resumed at #${status.resumedAt}`;
    case "streaming":
      return status.resumedAt === null ? "streaming" : `streaming · resumed at #${status.resumedAt}`;
    case "reconnecting":
      return `reconnecting (attempt ${status.attempt}) after #${status.after}…`;
    case "done":
      return `done · ${status.finishReason}${usage(status.usage)}`;
    case "error":
      return `error · ${status.code}: ${status.message}`;
    case "cancelled":
      return "cancelled";
  }
}

function usage(u: Usage | null): string {
  if (!u) return "";
  return ` · ${u.prompt_tokens ?? "?"} prompt + ${u.completion_tokens ?? "?"} completion tokens`;
}

export function StatusLine({ status }: { status: Status }) {
  return (
    <p
      className={`status status-${status.state}`}
      data-testid="status"
      data-state={status.state}
      data-resumed-at={"resumedAt" in status ? (status.resumedAt ?? undefined) : undefined}
      data-attempt={status.state === "reconnecting" ? status.attempt : undefined}
      role="status"
    >
      {statusText(status)}
    </p>
  );
}
