import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies the API to a gateway (SPOOL_GATEWAY, default the `spool dev` port).
const gateway = process.env.SPOOL_GATEWAY ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/v1": gateway } },
});
