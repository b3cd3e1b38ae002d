-- codeexec-lsp: user commands, and buffer-local keymaps when the `codeexec` client attaches.
-- The server itself is configured in lsp/codeexec.lua; start it with
-- `vim.lsp.enable('codeexec')` (or `require('codeexec').setup()`).
--
-- Commands: :CodeexecRun (range-aware), :CodeexecRunFile, :CodeexecExplain, :CodeexecFix,
-- :CodeexecCancel, :CodeexecRestart[!].
-- Keymaps (buffer-local, prefix `vim.g.codeexec_keymap_prefix`, default `<leader>e`):
-- r run, R run file, e explain, f fix, c cancel. `vim.g.codeexec_no_keymaps = true`
-- turns them off.
if vim.g.loaded_codeexec then
  return
end
vim.g.loaded_codeexec = true

if vim.fn.has('nvim-0.11') == 0 then
  vim.notify('codeexec: needs Neovim 0.11 or newer', vim.log.levels.WARN)
  return
end

require('codeexec').register()
