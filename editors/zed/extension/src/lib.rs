//! Registers codeexec-lsp as a language server for Python in Zed.
//!
//! Zed starts language servers only through extensions; this one finds the server
//! (`lsp.codeexec.binary` in settings.json, else `codeexec-lsp` on the project's PATH) and
//! hands it the `lsp.codeexec.settings` / `initialization_options` objects.

use zed_extension_api::{self as zed, serde_json, settings::LspSettings, LanguageServerId, Result};

const SERVER: &str = "codeexec";
const BINARY: &str = "codeexec-lsp";
const SECTION: &str = "codeexec";

struct CodeexecExtension;

impl CodeexecExtension {
    fn lsp_settings(worktree: &zed::Worktree) -> Option<LspSettings> {
        LspSettings::for_worktree(SERVER, worktree).ok()
    }

    /// The `codeexec` settings object, whether the user wrote it as
    /// `"settings": {"codeexec": {...}}` or directly as `"settings": {...}`.
    fn section(worktree: &zed::Worktree) -> Option<serde_json::Value> {
        let settings = Self::lsp_settings(worktree)?.settings?;
        match settings.get(SECTION) {
            Some(inner) => Some(inner.clone()),
            None => Some(settings),
        }
    }
}

impl zed::Extension for CodeexecExtension {
    fn new() -> Self {
        CodeexecExtension
    }

    fn language_server_command(
        &mut self,
        _language_server_id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> Result<zed::Command> {
        let binary = Self::lsp_settings(worktree).and_then(|settings| settings.binary);
        let configured = binary.as_ref().and_then(|binary| binary.path.clone());
        let args = binary
            .as_ref()
            .and_then(|binary| binary.arguments.clone())
            .unwrap_or_default();
        // The project's shell environment: its PATH (a venv's bin), and the variables
        // that hold the LLM and execution-API keys (the server reads them by name).
        let mut env = worktree.shell_env();
        if let Some(extra) = binary.as_ref().and_then(|binary| binary.env.clone()) {
            env.extend(extra);
        }
        let command = match configured {
            Some(path) if path.contains('/') || path.contains('\\') => path,
            Some(name) => worktree.which(&name).ok_or_else(|| not_found(&name))?,
            None => worktree.which(BINARY).ok_or_else(|| not_found(BINARY))?,
        };
        Ok(zed::Command { command, args, env })
    }

    fn language_server_initialization_options(
        &mut self,
        _language_server_id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> Result<Option<serde_json::Value>> {
        let explicit = Self::lsp_settings(worktree).and_then(|s| s.initialization_options);
        let empty = explicit
            .as_ref()
            .and_then(|value| value.as_object())
            .is_some_and(|object| object.is_empty());
        if explicit.is_some() && !empty {
            return Ok(explicit);
        }
        // Nothing explicit: start with the same settings the server will ask for.
        Ok(Self::section(worktree).map(|section| serde_json::json!({ SECTION: section })))
    }

    fn language_server_workspace_configuration(
        &mut self,
        _language_server_id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> Result<Option<serde_json::Value>> {
        // Zed answers workspace/configuration for section "codeexec" with this object's
        // "codeexec" member.
        Ok(Self::section(worktree).map(|section| serde_json::json!({ SECTION: section })))
    }
}

fn not_found(name: &str) -> String {
    format!(
        "{name} was not found on the project's PATH: install it with `pipx install .` in a \
         clone of codeexec-lsp (or `pipx install git+<repository URL>`), or set \
         lsp.codeexec.binary.path in settings.json"
    )
}

zed::register_extension!(CodeexecExtension);
