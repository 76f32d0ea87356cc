import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "test-artifacts/", ".cache/"] },
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
);
