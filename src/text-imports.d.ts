/** Python source, imported as text (`with { type: "text" }`): Bun and Deno both embed it. */
declare module "*.py" {
  const source: string;
  export default source;
}
