/** An answer's parts besides its text, as they stream: reasoning (collapsed), tool calls, a refusal. */
import type { MessageParts } from "./lib";

export function MessagePartsView({ parts }: { parts: MessageParts }) {
  return (
    <>
      {parts.reasoning !== "" && (
        <details className="reasoning" data-testid="reasoning">
          <summary>Reasoning</summary>
          <p>{parts.reasoning}</p>
        </details>
      )}
      {parts.toolCalls.map((call) => (
        <div className="tool-call" data-testid="tool-call" key={call.index} data-name={call.name ?? ""}>
          <span className="tool-name">{call.name ?? "tool"}</span>
          <pre>{call.arguments}</pre>
        </div>
      ))}
      {parts.refusal !== "" && (
        <p className="refusal" data-testid="refusal">
          {parts.refusal}
        </p>
      )}
    </>
  );
}
