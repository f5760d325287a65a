//! Table tests of the matcher with the built-in patterns: one line per case.
//! `report!` cases must be reports for that service; `not!` cases must not
//! be reports; `recovery!` and `maintenance!` check those classes.

use outagewatch::matcher::{Class, Matcher, Rule};
use outagewatch::normalize::normalize;
use outagewatch::source::RawPost;

enum Expect {
    Report(&'static str),
    /// A report whose service the text does not name.
    Unnamed,
    Not,
    /// Neither a report nor a recovery nor maintenance.
    Nothing,
    Recovery(&'static str),
    Maintenance(&'static str),
}
use Expect::*;

macro_rules! report {
    ($text:expr, $svc:expr) => {
        ($text, Report($svc))
    };
}
macro_rules! not {
    ($text:expr) => {
        ($text, Not)
    };
}
macro_rules! nothing {
    ($text:expr) => {
        ($text, Nothing)
    };
}

const CASES: &[(&str, Expect)] = &[
    // English: the basic forms.
    report!("is twitter down?", "twitter"),
    report!("Is Twitter down?", "twitter"),
    report!("IS TWITTER DOWN???", "twitter"),
    report!("twitter down", "twitter"),
    report!("twitter is down", "twitter"),
    report!("twitter is down again", "twitter"),
    report!("#TwitterDown", "twitter"),
    report!("#twitterdown anyone?", "twitter"),
    report!("twitter not loading", "twitter"),
    report!("insta not loading", "instagram"),
    report!("instagram not loading for anyone else?", "instagram"),
    report!("#InstagramDown", "instagram"),
    report!("is discord down", "discord"),
    report!("discord keeps disconnecting me", "discord"),
    report!("discord outage?", "discord"),
    report!("github is down, can't push", "github"),
    report!("github.com is down", "github"),
    report!("GitHub 502 bad gateway", "github"),
    // Status codes in the plural, as people who build on a service say it.
    report!("github is giving me 503s", "github"),
    report!("github api returning 500s", "github"),
    not!("spotify wrapped says i listened to music from the 1500s"),
    report!("youtube not working", "youtube"),
    report!("youtube won't load", "youtube"),
    report!("gmail is down", "gmail"),
    report!("can't log in to gmail", "gmail"),
    report!("aws outage again", "aws"),
    report!("cloudflare is down, half the internet broke", "cloudflare"),
    report!("slack is down", "slack"),
    report!("reddit is down", "reddit"),
    report!("reddit won't load", "reddit"),
    report!("bluesky is down", "bluesky"),
    report!("chatgpt is down", "chatgpt"),
    report!("chatgpt not responding", "chatgpt"),
    report!("whatsapp down?", "whatsapp"),
    report!("whatsapp messages not sending", "whatsapp"),
    report!("facebook is down", "facebook"),
    report!("netflix not working", "netflix"),
    report!("spotify is down", "spotify"),
    report!("steam is down", "steam"),
    report!("is steam down?", "steam"),
    report!("twitch is down", "twitch"),
    report!("tiktok not loading", "tiktok"),
    report!("x is down", "twitter"),
    report!("is X down?", "twitter"),
    report!("outlook is down", "outlook"),
    report!("zoom is down", "zoom"),
    report!("teams is down again", "teams"),
    report!("signal is down", "signal"),
    report!("paypal is down", "paypal"),
    report!("venmo not working", "venmo"),
    report!("xbox live is down", "xbox"),
    report!("psn down?", "playstation"),
    report!("roblox is down", "roblox"),
    report!("fortnite servers down", "fortnite"),
    report!("minecraft servers are down", "minecraft"),
    report!("telegram not working", "telegram"),
    report!("snapchat is down", "snapchat"),
    report!("linkedin is down", "linkedin"),
    report!("pinterest is down", "pinterest"),
    report!("disney+ is down", "disneyplus"),
    report!("hulu not loading", "hulu"),
    report!("verizon outage", "verizon"),
    report!("comcast internet is down", "comcast"),
    report!("twitter: something went wrong. try reloading.", "twitter"),
    report!("twitter down?? anyone else", "twitter"),
    report!("is it just me or is reddit down", "reddit"),
    report!("wtf is wrong with instagram, it won't load", "instagram"),
    report!("discord not loading for anyone else? 😭", "discord"),
    report!("@github is down", "github"),
    report!("github is down https://www.githubstatus.com", "github"),
    report!("netflix keeps crashing", "netflix"),
    report!("gmail keeps timing out", "gmail"),
    report!("slack not sending messages", "slack"),
    // Portuguese.
    report!("o zap caiu", "whatsapp"),
    report!("o zap caiu?", "whatsapp"),
    report!("whatsapp caiu", "whatsapp"),
    report!("caiu o whatsapp?", "whatsapp"),
    report!("#WhatsAppCaiu", "whatsapp"),
    report!("instagram fora do ar", "instagram"),
    report!("o insta tá fora do ar", "instagram"),
    report!("instagram não carrega", "instagram"),
    report!("o twitter caiu", "twitter"),
    report!("nubank fora do ar", "nubank"),
    report!("o youtube não carrega", "youtube"),
    report!("discord caiu?", "discord"),
    // Spanish.
    report!("se cayó whatsapp", "whatsapp"),
    report!("se cayó instagram?", "instagram"),
    report!("whatsapp no funciona", "whatsapp"),
    report!("instagram no carga", "instagram"),
    report!("twitter no funciona", "twitter"),
    report!("youtube está caído", "youtube"),
    report!("netflix no funciona", "netflix"),
    report!("se cayó discord", "discord"),
    // French.
    report!("twitter est en panne", "twitter"),
    report!("whatsapp en panne", "whatsapp"),
    report!("instagram ne marche pas", "instagram"),
    report!("discord ne fonctionne plus", "discord"),
    report!("youtube en panne ?", "youtube"),
    // German.
    report!("whatsapp geht nicht", "whatsapp"),
    report!("instagram funktioniert nicht", "instagram"),
    report!("störung bei whatsapp", "whatsapp"),
    report!("twitter down?", "twitter"),
    report!("youtube geht nicht mehr", "youtube"),
    // Italian.
    report!("whatsapp non funziona", "whatsapp"),
    report!("instagram non funziona", "instagram"),
    report!("whatsapp down?", "whatsapp"),
    report!("youtube non va", "youtube"),
    // Japanese (no spaces between words).
    report!("インスタ落ちてる", "instagram"),
    report!("インスタ落ちてる？", "instagram"),
    // `！` ends a sentence though no space follows: the past word of the
    // next one is not this one's.
    report!("インスタ落ちてる！昨日は楽しかった", "instagram"),
    report!("ツイッター落ちた？", "twitter"),
    report!("LINE繋がらない", "line"),
    report!("YouTube見れない", "youtube"),
    report!("ディスコード落ちてる", "discord"),
    report!("#インスタ落ちた", "instagram"),
    // Korean.
    report!("카톡 안돼", "kakaotalk"),
    report!("카톡 먹통", "kakaotalk"),
    report!("인스타 안돼요", "instagram"),
    report!("유튜브 먹통", "youtube"),
    // Dutch: "ligt eruit", "doet het niet", "storing bij", and the verb before the
    // service in a question ("ligt whatsapp eruit?").
    report!("ligt whatsapp eruit?", "whatsapp"),
    report!("whatsapp ligt eruit", "whatsapp"),
    report!("KPN ligt er weer uit", "kpn"),
    report!("storing bij ziggo?", "ziggo"),
    report!("#ZiggoStoring", "ziggo"),
    report!("insta doet het niet", "instagram"),
    report!("doet instagram het niet?", "instagram"),
    report!("werkt teams bij jullie ook niet?", "teams"),
    report!("kan niet inloggen bij rabobank", "rabobank"),
    report!("digid ligt plat", "digid"),
    report!("abn amro app werkt niet meer", "abnamro"),
    report!("ns app doet t niet", "ns"),
    report!("heeft kpn storing? geen internet hier", "kpn"),
    report!("insta laadt nie", "instagram"),
    // Dutch "als" is German "als" too: a German failure stays one.
    report!("als ich discord öffne geht nichts mehr", "discord"),
    report!("bol.com laadt niet", "bol"),
    report!("youtube werkt nie", "youtube"),
    report!("Ligt Facebook plat?", "facebook"),
    report!("whatsapp ligt nu eruit", "whatsapp"),
    // Russian: "не работает", "упал", "лежит", "сбой", with declined names
    // ("в телеграме").
    report!("ютуб упал?", "youtube"),
    report!("ютуб не работает", "youtube"),
    report!("телеграм лежит", "telegram"),
    report!("в телеграме сбой", "telegram"),
    report!("вк опять лёг", "vk"),
    report!("вк опять лег", "vk"),
    report!("вотсап не грузится", "whatsapp"),
    report!("дискорд не открывается", "discord"),
    report!("инста глючит", "instagram"),
    report!("сбер лежит?", "sberbank"),
    report!("тинькофф не работает, не проходит оплата", "tinkoff"),
    report!("госуслуги недоступны", "gosuslugi"),
    report!("яндекс такси не работает", "yandex"),
    report!("мтс нет связи", "mts"),
    report!("стим не грузится", "steam"),
    report!("#телеграмсбой", "telegram"),
    // Not reports: other meanings of "down", no service, not now.
    not!("the Dow is down"),
    not!("the Dow is down 800 points"),
    not!("feeling down today"),
    not!("I'm feeling a bit down"),
    not!("TOUCHDOWN!!!"),
    not!("what a touchdown"),
    not!("3rd down and long"),
    not!("down by 7 at the half"),
    not!("anyone down for discord tonight?"),
    not!("who's down for tacos"),
    not!("meet me downtown"),
    not!("downloading the new spotify update"),
    not!("facebook shut down a group I was in"),
    not!("countdown to the new season on netflix"),
    not!("calm down, it's just twitter"),
    not!("twitter stock is down 5%"),
    // A site or an app in the sentence spares a phrase from its market
    // words only when it stands nearer the phrase than they do.
    not!("Netflix shares are down 5% after earnings, says the website"),
    not!("Tesla stock is down 8% on the Robinhood app"),
    not!("my stocks app says Netflix is down 5%"),
    ("paid $8 for wifi that can't load a website", Unnamed),
    not!("netflix shares down 9% after earnings"),
    not!("twitter was down last night lol"),
    not!("remember when twitter was down in 2022"),
    not!("instagram isn't down, it's your wifi"),
    not!("my laptop crashed again"),
    not!("just posted a new video on youtube"),
    not!("watching netflix tonight"),
    not!("love the new discord update"),
    not!("x marks the spot"),
    not!("down bad for this album"),
    not!("upside down cake recipe"),
    not!("slow down, you're going too fast"),
    not!("going down the road to the beach"),
    not!("the elevator is broken"),
    not!("my wifi is down"),
    not!("good morning everyone"),
    not!("steam is rising from my coffee"),
    not!("our teams meet on monday"),
    not!("zoom in on the picture"),
    not!("a bolsa caiu 3% hoje"),
    not!("試験に落ちた"),
    not!("the servers will be down for maintenance at 2am"),
    not!("youtube is back"),
    // Dutch: "plat" of tyres and dialect, the own phone, the past, markets, looks.
    not!("plat praten met de buren"),
    not!("mijn band is plat"),
    not!("mijn telefoon doet het niet, dus geen whatsapp"),
    not!("gisteren lag whatsapp eruit"),
    not!("aandeel KPN daalt 3%"),
    not!("whatsapp ligt er niet uit, ligt aan je wifi"),
    not!("hoe ziet instagram eruit na de update?"),
    not!("ik weet het niet, netflix of youtube?"),
    not!("storing data on instagram servers"),
    not!("het weer werkt niet mee, geen netflix avond buiten"),
    not!("als whatsapp eruit ligt ga ik gewoon slapen"),
    not!("ajax ligt eruit in de beker, kijk de samenvatting op youtube"),
    not!("ik kan niet inloggen op mijn eigen laptop lol, wachtwoord vergeten"),
    not!("rabobank had vorige week een storing, nu lijkt alles in orde"),
    // Russian: prices, things lying somewhere, going to bed, people falling or
    // out of work, the past, the own phone.
    not!("акции яндекса упали на 5%"),
    not!("курс рубля упал"),
    not!("видео лежит на ютубе"),
    not!("код лежит на гитхабе"),
    not!("лёг спать под ютуб"),
    not!("упал со стула от этого тиктока"),
    not!("вчера вк лежал весь вечер"),
    not!("ютуб не упал, это у тебя интернет"),
    not!("он не работает, сидит в дискорде весь день"),
    not!("мой телефон сломался, телеграм не открыть"),
    not!("как удалить аккаунт в инстаграме?"),
    not!("это так не работает в телеграме"),
    not!("на ютубе лежит новый клип"),
    not!("сбер лёг в основу новой платформы"),
    not!("Вчерашний сбой в телеграме объяснили проблемами с дата-центром"),
    not!("хочу чтобы вк упал и я наконец лег спать"),
    // Recovery and maintenance, counted separately.
    ("twitter is back", Recovery("twitter")),
    ("discord is working again", Recovery("discord")),
    ("instagram is back up", Recovery("instagram")),
    // A recovery phrase said of the service beside a failure phrase is a
    // recovery, unless the failure has a "now" of its own.
    ("discord is back up after being down", Recovery("discord")),
    ("discord was down but it's back now", Recovery("discord")),
    (
        "discord is back after being down for 2 hours",
        Recovery("discord"),
    ),
    (
        "twitter is working again after the outage",
        Recovery("twitter"),
    ),
    ("twitter is back, the outage is over", Recovery("twitter")),
    ("instagram back online after outage", Recovery("instagram")),
    // Dutch and Russian recovery and maintenance.
    ("whatsapp werkt weer", Recovery("whatsapp")),
    (
        "DigiD is zondag niet bereikbaar wegens gepland onderhoud",
        Maintenance("digid"),
    ),
    ("ютуб заработал", Recovery("youtube")),
    (
        "на госуслугах плановые технические работы, портал будет недоступен",
        Maintenance("gosuslugi"),
    ),
    (
        "spotify was down for a bit but now it's working again",
        Recovery("spotify"),
    ),
    (
        "reddit is finally back after going down",
        Recovery("reddit"),
    ),
    (
        "ok discord is working again, was down for me earlier",
        Recovery("discord"),
    ),
    ("netflix isn't down anymore", Recovery("netflix")),
    ("discord's no longer down", Recovery("discord")),
    ("twitter is no longer down", Recovery("twitter")),
    (
        "ya volvió whatsapp después de la caída",
        Recovery("whatsapp"),
    ),
    ("o zap caiu mas já voltou", Recovery("whatsapp")),
    (
        "youtube est en panne... ah non c'est revenu",
        Recovery("youtube"),
    ),
    // ... and still a report: the failure is current in words of its own,
    // of another service, or the recovery is asked about or denied.
    report!(
        "twitter was back for a minute, now it's down again",
        "twitter"
    ),
    report!("discord is back up but twitter is down", "twitter"),
    report!("twitter is still down, when will it be back up?", "twitter"),
    report!("reddit is down and still not back up", "reddit"),
    report!(
        "@comcast my internet is down, when will service be restored?",
        "comcast"
    ),
    report!("is twitter down? is it back yet?", "twitter"),
    report!("github is down again, it was back for an hour", "github"),
    nothing!("is twitter back up?"),
    // A question whatever closes it: more marks, an emoji, a quote.
    nothing!("is discord back up?!"),
    nothing!("is discord back up?😭"),
    nothing!("\"is discord back up?\""),
    report!("isn't twitter down?!", "twitter"),
    report!("isn't twitter down?😭", "twitter"),
    report!("discord laggy for anyone else?!", "discord"),
    // A word of one language that is an ordinary word of another counts
    // once, in one list: English "crash" is weak, not also French outage.
    // And emphasis alone ("again", "wtf") does not lift a lone weak phrase.
    not!("Steam crash sale"),
    not!("youtube crash compilation"),
    not!("Roblox crash simulator"),
    not!("the Uber crash on I-95"),
    not!("twitter is so bizarre rn wtf"),
    not!("tiktok is bizarre again ugh"),
    not!("found a bug in my discord bot again ugh"),
    not!("freeze frame on youtube rn lol"),
    not!("twitter is weird again wtf"),
    not!("instagram is so weird rn ugh"),
    not!("the youtube algorithm is cooked again wtf"),
    report!("discord is laggy for anyone else?", "discord"),
    report!("twitter is slow and glitchy", "twitter"),
    report!("youtube keeps crashing", "youtube"),
    report!("discord ça crash en boucle", "discord"),
    report!("instagram est bizarre, quelqu'un d'autre ?", "instagram"),
    report!("netflix a crashé encore", "netflix"),
    report!("i can't get into twitter", "twitter"),
    // Names that are also words or given names ("pix", "Claude", "grok")
    // are ambiguous: they need a phrase right next to them that is not said
    // of people too, a context word or a hashtag.
    not!("Claude is out sick today"),
    not!("Claude Monet is dead but his art lives on"),
    not!("Claude said the printer is not working"),
    (
        "sent you the pix, the website is not working for me",
        Unnamed,
    ),
    not!("grok this: netflix stock is down 5%"),
    report!("claude is down", "claude"),
    report!("Claude is overloaded again", "claude"),
    report!("claude.ai won't load", "claude"),
    report!("claude not responding, anyone else?", "claude"),
    report!("pix fora do ar, não consigo pagar nada", "pix"),
    report!("o pix caiu?", "pix"),
    report!("grok is down", "grok"),
    report!("grok ai not working", "grok"),
    // After "the", "this", "a", "his"…, an ambiguous name next to a phrase
    // is the ordinary word; after "my" it is still the user's app, and a
    // context word still names the service.
    not!("the switch is broken in my kitchen"),
    not!("the meta is broken in ranked"),
    not!("this meta is dead, nerf it"),
    not!("the edge is broken on my table"),
    not!("his ring is broken"),
    not!("the prime minister is out"),
    report!("the line app is down", "line"),
    report!("the ring app is down", "ring"),
    report!("my outlook is not loading", "outlook"),
    report!("my teams keeps crashing", "teams"),
    report!("my switch won't connect to the eshop", "nintendo"),
    report!("outlook is down", "outlook"),
    // A negator shortly before a failure phrase denies it; one inside the
    // phrase is the phrase's own, and a question keeps it.
    not!("discord never goes down"),
    not!("I don't think discord is down"),
    not!("twitter ain't down"),
    not!("twitter aint down lol"),
    not!("netflix hasn't been down at all"),
    not!("twitter hasn't gone down once this year"),
    not!("discord doesn't seem down"),
    not!("twitter will never go down"),
    not!("no creo que whatsapp esté caído"),
    not!("o whatsapp nunca fica fora do ar"),
    report!("twitter is not working", "twitter"),
    report!("youtube won't load", "youtube"),
    report!("instagram doesn't load", "instagram"),
    report!("isn't twitter down?", "twitter"),
    report!("is twitter not working for anyone else?", "twitter"),
    report!("not sure why but i think twitter is down", "twitter"),
    report!("instagram não carrega", "instagram"),
    report!("whatsapp no funciona", "whatsapp"),
    report!("discord ne fonctionne plus", "discord"),
    // Phrases overlapping in part are one statement: "keeps kicking me" and
    // "kicking me out" in "keeps kicking me out" are one weak phrase.
    not!("roblox keeps kicking me out of games lol"),
    not!("fortnite keeps kicking me out of the lobby haha"),
    report!(
        "roblox keeps kicking me out of games, anyone else?",
        "roblox"
    ),
    report!("roblox keeps kicking me out and it's so laggy", "roblox"),
    report!("twitch keeps kicking me off", "twitch"),
    // A condition, a wish, a habit, a generic question or a how-to: not a
    // failure now (the cue stands before the phrase, in its sentence).
    not!("if twitter goes down I'll finally get some work done"),
    not!("what if discord went down forever"),
    not!("I hope twitter goes down"),
    not!("I wish tiktok would go down"),
    not!("twitter should go down"),
    not!("when youtube goes down everyone panics"),
    not!("every time reddit is down I read a book"),
    not!("how to check if discord is down"),
    not!("Why does Reddit go down so often?"),
    not!("does netflix ever go down?"),
    not!("how often does github go down"),
    not!("me pretending twitter is down so I don't reply"),
    not!("Netflix canceled the show, my heart is broken"),
    not!("if spotify is not working, try restarting the app"),
    not!("Troubleshooting: Discord not loading? Here's how to fix it"),
    not!("10 ways to fix Instagram not working"),
    not!("How to fix \"something went wrong\" on Instagram"),
    not!("Is Netflix down? Here's how to check"),
    not!("What to do when WhatsApp is not working"),
    not!("ojalá twitter esté caído todo el día"),
    not!("tomara que o twitter fique fora do ar"),
    not!("falls twitter down ist, nutzt mastodon"),
    not!("j'espère que twitter est en panne demain"),
    // ... while questions about now, indirect questions, the author's own
    // attempts and a hope after the failure stay reports.
    report!("is it just me or is twitter down", "twitter"),
    report!("anyone else? discord won't load", "discord"),
    report!(
        "when will twitter be back? it's been down for hours",
        "twitter"
    ),
    report!("does anyone know if discord is down?", "discord"),
    report!("not sure if reddit is down or it's my wifi", "reddit"),
    report!(
        "every time i open twitter it says something went wrong",
        "twitter"
    ),
    report!("twitter is down, hope it's back soon", "twitter"),
    report!("did twitter go down?", "twitter"),
    report!(
        "I can't log in to Twitter If anyone wants me I'll be on Facebook",
        "twitter"
    ),
    report!("if i refresh, instagram still won't load", "instagram"),
    (
        "twitter will be down for maintenance at 2am",
        Maintenance("twitter"),
    ),
    (
        "scheduled maintenance: github will be down tonight",
        Maintenance("github"),
    ),
    // Issue 9, family 1: addressed to the company. Catalogued handles name
    // their service; an unknown account addressed about a thing is a
    // discovered service named by its brand (support words cut off).
    report!("@AskPayPal is your site down?", "paypal"),
    report!("@SpotifyCares app keeps crashing on every song", "spotify"),
    report!("Is @discordapp down for anyone else??", "discord"),
    report!("@AcmeHelp your website won't load", "acme"),
    report!("@Acme_Support the app won't let me log in", "acme"),
    report!(
        "@AskAcme is the site down? getting an error at checkout",
        "acme"
    ),
    report!(
        ".@FooAir your check-in page keeps giving me an error",
        "fooair"
    ),
    not!("@jane that link isn't working"),
    // A name declared ambiguous is an account only where a service lists
    // it among its handles: `@tim`, `@max`, `@claude` are people here.
    not!("@tim isn't working tonight, he's off"),
    not!("@max is dead lol"),
    not!("@claude is out sick today"),
    report!("#MaxDown", "hbomax"),
    not!("@bob isn't working tonight, he's off"),
    // "Your" thing is the addressee's, however near another capitalised
    // name stands; "your" before a service's name is still that service.
    report!(
        "@FooAir The Seat Map Tool section of your website seems to be broken",
        "fooair"
    ),
    report!("@AskAcme Chase Sapphire says your site is down", "acme"),
    report!("@SNCF votre site est en panne", "sncf"),
    report!("@bob your instagram is down lol", "instagram"),
    // Chat tools' group mentions pasted into a post are nobody's account:
    // the report stays with the service it names.
    report!(
        "Discord down?? can't log in <!channel> @everyone @here",
        "discord"
    ),
    ("@everyone is the site down?", Unnamed),
    ("@here your app won't load", Unnamed),
    report!("@channel is slack down?", "slack"),
    // A discovered name is 2 to 41 characters (a domain's first label at
    // most): whoever writes the post chooses it, and it goes into alerts.
    report!(
        "#AbcdefghijAbcdefghijAbcdefghijAbcdefghijkDown",
        "abcdefghijabcdefghijabcdefghijabcdefghijk"
    ),
    not!("#AbcdefghijAbcdefghijAbcdefghijAbcdefghijkmDown"),
    report!(
        "Abcdefghijabcdefghijabcdefghijabcdefghijk is down again",
        "abcdefghijabcdefghijabcdefghijabcdefghijk"
    ),
    not!("Abcdefghijabcdefghijabcdefghijabcdefghijkm is down again"),
    (
        "@AbcdefghijAbcdefghijAbcdefghijAbcdefghijkm is your site down?",
        Unnamed,
    ),
    // Family 2: services nobody listed, by their capitalised name.
    report!("Blipster is down again", "blipster"),
    report!("the GameVault server is down", "gamevault"),
    report!(
        "MyUniPortal isn't working and my quiz is due",
        "myuniportal"
    ),
    report!(
        "The Acme Rewards website isn't loading for me",
        "acmerewards"
    ),
    // A guessed name needs a predicate said of services: people, teams,
    // shops and markets are "out for the season", "out of oat milk",
    // "down 3 runs", "down in the polls", "stopped working at 65".
    not!("Mahomes is out for the season"),
    not!("LeBron is out tonight"),
    not!("LeBron down?"),
    not!("Blipster down?"),
    not!("Messi is out injured"),
    not!("Ohtani is out of the lineup"),
    not!("Costco is out of toilet paper"),
    not!("Power is out in Austin"),
    not!("Embiid is out again"),
    not!("Biden is down in the polls"),
    not!("Trump is down 5 in Pennsylvania"),
    not!("Yankees are down 3 runs"),
    not!("Liverpool are down at half time"),
    not!("Dad stopped working at 65"),
    not!("#StocksDown"),
    not!("#DowDown"),
    not!("#NasdaqDown again"),
    report!("Blipster is down", "blipster"),
    report!("is Blipster down?", "blipster"),
    report!("Blipster down for anyone else?", "blipster"),
    report!("Blipster is out for anyone else?", "blipster"),
    report!("Blipster is out?", "blipster"),
    report!("Blipster is down in Europe", "blipster"),
    report!("Blipster is down for 2 hours now", "blipster"),
    report!("Blipster stopped working at 3pm", "blipster"),
    report!("Hoyts website isn't working", "hoyts"),
    report!("Site ItaCeramica fora do ar", "itaceramica"),
    // A name the catalogue does not know is read from a hashtag only when
    // the tag as written breaks into words between it and an outage word.
    report!("#BlipfmDown", "blipfm"),
    not!("#blipfmdown"),
    // Hashtags that are ordinary words split into no service: a prefix
    // `is`, an ambiguous suffix (`dead`), a word that ends in `down`.
    not!("#Israel"),
    not!("#istanbul"),
    not!("#issues"),
    not!("#Isaac"),
    not!("#TheWalkingDead"),
    not!("#Markdown"),
    not!("#Sundown"),
    not!("#Rundown"),
    not!("#Pannekoek"),
    not!("#ausfallschritt"),
    not!("#ZorblyDead"),
    not!("#ZorblyCrash"),
    not!("#IsZorbly"),
    not!("#outagezorbly"),
    not!("#ZoDown"),
    not!("#Shutdown"),
    not!("#Breakdown"),
    not!("#Countdown"),
    not!("#LockDown"),
    not!("#isolation"),
    not!("#Lowdown"),
    not!("#pannenhilfe"),
    // Catalogued names in any case, and with two affixes.
    report!("#IsTwitterDown", "twitter"),
    report!("#istwitterdown", "twitter"),
    report!("#twitterdown", "twitter"),
    report!("#TWITTERDOWN", "twitter"),
    report!("#instagramdown", "instagram"),
    report!("#instagramoutage", "instagram"),
    report!("#whatsappcaiu", "whatsapp"),
    // Discovered names written as words of their own.
    report!("#ZorblyDown", "zorbly"),
    // A run folded across the break ("ddD" reads as the d of "down").
    report!("#UzlklfddDown again", "uzlklf"),
    report!("#zorbly_down", "zorbly"),
    report!("#Zorbly_Outage", "zorbly"),
    report!("#IsZorblyDown", "zorbly"),
    report!("#OutageZorbly", "zorbly"),
    report!("#ZorblyNotWorking", "zorbly"),
    report!("#Web3appDown", "web3app"),
    report!("#ZorblyCaiu", "zorbly"),
    report!("#zorbly落ちた", "zorbly"),
    report!("#zorbly먹통", "zorbly"),
    report!("is blip.fm down?", "blip"),
    not!("three pages down and still no answer"),
    not!("my job is killing me"),
    not!("another one bites the dust"),
    not!("Laying down on the couch all day"),
    not!("i think Rex is dead, poor dog"),
    // Family 3: everyday spelling.
    report!("facebook wont load", "facebook"),
    report!("instagram isnt working", "instagram"),
    report!("cant get on twitter", "twitter"),
    report!("youtube doesnt work", "youtube"),
    report!("why is netflix downnnnn", "netflix"),
    report!("discord no work", "discord"),
    report!("TWITTER WONT LET ME LOG IN", "twitter"),
    report!("reddit keeps kicking me off", "reddit"),
    report!("gmail not letting me log in", "gmail"),
    // Family 4: negation scope.
    report!("twitter is not working for me", "twitter"),
    report!("instagram isn't working for me either", "instagram"),
    not!("twitter is working for me"),
    not!("discord isn't down, it's your wifi"),
    not!("spotify works fine here"),
    // Family 5: access and error predicates said of a thing.
    ("the site is down", Unnamed),
    (
        "can't access the website, getting a 502 bad gateway",
        Unnamed,
    ),
    ("the api keeps returning 503 service unavailable", Unnamed),
    ("website not loading for anyone else?", Unnamed),
    report!("discord keeps saying something went wrong", "discord"),
    report!(
        "getting an error when I try to check in on the united website",
        "united"
    ),
    // Family 6: feature-level failures are the service's.
    report!("the facebook uploader isn't working", "facebook"),
    report!("steam chat broken?", "steam"),
    report!(
        "the spotify app crashes on launch every time, is it down",
        "spotify"
    ),
    // Family 7: error screens and folklore.
    report!("fail whale again", "twitter"),
    report!("ugh, the failwhale", "twitter"),
    not!("used the term fail whale in a pitch last night"),
    // Family 8: precision traps.
    not!("Photoshop crashed and I lost my work, my laptop is so old"),
    not!("this site just crashed my browser"),
    not!("my laptop died"),
    not!("walking down the street"),
    not!("trying to cut down on coffee"),
    not!("the app crashes on start after the update"),
    not!("thanks for reporting, the site should be back up now"),
    not!("we're aware of the issue and working on it, sorry for the inconvenience"),
    not!("facebook was down all day yesterday"),
    not!("the dow is down 300 points"),
    // Other languages: things that fail without a name.
    ("la página está caída", Unnamed),
    ("o site está fora do ar", Unnamed),
    ("le site est inaccessible depuis ce matin", Unnamed),
    ("die Webseite ist nicht erreichbar", Unnamed),
    ("il sito è irraggiungibile", Unnamed),
    ("サイトにアクセスできない", Unnamed),
    ("사이트 접속이 안돼요", Unnamed),
    not!("推しが尊すぎて脳内サーバーが落ちた"),
    // Apostrophes as phones write them (’, ʼ, ‘) are the apostrophe.
    report!("Netflix isn’t working", "netflix"),
    report!("instagram won’t load", "instagram"),
    report!("I can’t log in to netflix", "netflix"),
    report!("youtube doesn’t work", "youtube"),
    report!("gmail won‘t load", "gmail"),
    report!("reddit isnʼt working", "reddit"),
    report!("twitter ne s’ouvre pas", "twitter"),
    report!("instagram c’est down", "instagram"),
    report!("whatsapp geht’s nicht", "whatsapp"),
    not!("Spotify isn’t down"),
    not!("discord isn’t down, it’s your wifi"),
    not!("nah twitter isn’t down for me"),
    // Characters that show nothing (Default_Ignorable_Code_Point) and
    // enclosing marks split no word.
    report!("twitter is d\u{FE0F}own", "twitter"),
    report!("twi\u{FE0E}tter is down", "twitter"),
    report!("twitter is do\u{E0041}wn", "twitter"),
    report!("twitter is do\u{0489}w\u{0489}n", "twitter"),
    report!("twitter is d\u{180E}own", "twitter"),
    report!("twitter is d\u{115F}own", "twitter"),
    report!("insta\u{3164}gram not loading", "instagram"),
    // Look-alike letters and zalgo fold to the plain word.
    report!("tw\u{0456}tter \u{0456}s d\u{043E}wn", "twitter"),
    report!(
        "d\u{0336}i\u{0336}s\u{0336}c\u{0336}o\u{0336}r\u{0336}d\u{0336} is down",
        "discord"
    ),
    // A line break ends a sentence: context on another line says nothing
    // of the report (it cancelled it as past, local or market).
    report!(
        "Twitter is down\nhad a great time at the beach yesterday",
        "twitter"
    ),
    report!("discord is down\nmy laptop is fine tho", "discord"),
    report!("Gmail is not working\nAmazon stock hits record", "gmail"),
    report!("Twitter is down\r\n\r\nugh", "twitter"),
    // ...and on the same line it still does.
    not!("Twitter was down yesterday\nhad a great time"),
    not!("netflix stock is down 5%\nbuying more"),
    // Small capitals are their letters.
    report!("ᴛᴡɪᴛᴛᴇʀ ɪs ᴅᴏᴡɴ", "twitter"),
    report!("twitter is ᴅᴏᴡɴ", "twitter"),
    report!("ɪɴsᴛᴀɢʀᴀᴍ ɴᴏᴛ ʟᴏᴀᴅɪɴɢ", "instagram"),
    // An outage hashtag with a number or a tail word after it.
    report!("#TwitterDown2024", "twitter"),
    report!("#twitterdown2", "twitter"),
    report!("#TwitterDownAgain", "twitter"),
    report!("#InstagramOutageToday", "instagram"),
    report!("#BlipfmDown2024", "blipfm"),
    not!("#Twitter2024"),
    not!("#Lockdown2020"),
    not!("#Markdown2"),
    not!("#Countdown2024"),
    not!("#blipfmdown2024"),
    // Contractions without their apostrophe, "log into" and "log onto", and a service's
    // name with an `s` (a possessive without its apostrophe).
    report!("discords down", "discord"),
    report!("instagrams down", "instagram"),
    report!("twitters not loading", "twitter"),
    report!("discord wont connect", "discord"),
    report!("i cant log into twitter", "twitter"),
    report!("i can't sign into twitter", "twitter"),
    report!("can't log onto instagram", "instagram"),
    report!("cant sign onto discord since this morning", "discord"),
    not!("I log onto twitter every day"),
    not!("the servers arent down its your internet"),
    not!("xs down"),
    not!("the mets are down 3 runs"),
    // Japanese verbs in kana, as in kanji.
    report!("インスタおちてる", "instagram"),
    report!("Xおちた？", "twitter"),
    report!("ツイッターおちた", "twitter"),
    report!("YouTubeみれない", "youtube"),
    report!("インスタひらけない", "instagram"),
    not!("試験おちた"),
    // A name of one service only: @YouTubeTV is YouTube TV's.
    report!("#YouTubeTVDown", "youtubetv"),
    report!("@YouTubeTV is the app down?", "youtubetv"),
    // Context that re-classed clear reports: an alert's "heads up", the
    // author's own reboot, minutes ago, "down with anyone".
    report!("heads up, twitter is down", "twitter"),
    report!(
        "rebooted my router twice and discord is still down",
        "discord"
    ),
    report!("twitter went down 5 minutes ago", "twitter"),
    report!("is discord down with anyone else?", "discord"),
    not!("twitter went down 5 years ago"),
    not!("coming down with a cold, netflix all day"),
    not!("we rebooted the servers, discord is down for a bit"),
    // Failure words said of the author, or an idiom.
    not!("having trouble sleeping so i'm on tiktok"),
    not!("i'm not working this week so netflix all day"),
    not!("twitter is dead to me"),
];

#[test]
fn matcher_table() {
    let matcher = Matcher::embedded().expect("built-in patterns");
    let mut failures = Vec::new();
    for (text, expect) in CASES {
        let post = normalize(RawPost {
            time_us: 0,
            author: "t".into(),
            uri: String::new(),
            key: None,
            text: (*text).into(),
            langs: vec![],
            tags: vec![],
        });
        let v = matcher.classify(&post);
        let got = (v.class, v.service.as_deref());
        let ok = match expect {
            Report(svc) => got == (Class::Report, Some(*svc)),
            Unnamed => got == (Class::Report, None),
            Not => v.class != Class::Report,
            Nothing => v.class == Class::None,
            Recovery(svc) => got == (Class::Recovery, Some(*svc)),
            Maintenance(svc) => got == (Class::Maintenance, Some(*svc)),
        };
        if !ok {
            failures.push(format!(
                "{text:?}: got {:?} {:?} (score {:.2})",
                v.class, v.service, v.score
            ));
        }
    }
    assert!(CASES.len() >= 220, "{} cases", CASES.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn catalogue_covers_the_services_people_complain_about() {
    use outagewatch::matcher::patterns::Category;
    let matcher = Matcher::embedded().expect("built-in patterns");
    let services: Vec<_> = matcher.services().collect();
    assert!(services.len() >= 150, "{} services", services.len());
    for id in [
        "twitter",
        "instagram",
        "whatsapp",
        "facebook",
        "discord",
        "github",
        "youtube",
        "gmail",
        "aws",
        "cloudflare",
        "slack",
        "reddit",
        "bluesky",
        "chatgpt",
    ] {
        assert!(services.iter().any(|s| s.0 == id), "missing {id}");
    }
    for category in [
        Category::Social,
        Category::Messaging,
        Category::Email,
        Category::Cloud,
        Category::Cdn,
        Category::Gaming,
        Category::Bank,
        Category::Payments,
        Category::Streaming,
        Category::Isp,
        Category::Mobile,
        Category::Ai,
        Category::Devtools,
    ] {
        let n = services.iter().filter(|s| s.2 == category).count();
        assert!(n >= 3, "{category:?}: only {n} services");
    }
    for lang in ["en", "es", "pt", "ja", "de", "fr"] {
        assert!(
            matcher.languages().iter().any(|l| l == lang),
            "missing language {lang}"
        );
    }
}

/// `check --explain` and the JSON reasons give spans in characters, not
/// bytes: in a text with multi-byte letters the span of "is down" starts
/// where a person counts it.
#[test]
fn reasons_carry_character_spans() {
    let matcher = Matcher::embedded().expect("built-in patterns");
    let text = "ツイッター is down";
    let post = normalize(RawPost {
        time_us: 0,
        author: "t".into(),
        uri: String::new(),
        key: None,
        text: text.into(),
        langs: vec![],
        tags: vec![],
    });
    let v = matcher.explain(&post);
    assert!(v.is_report(), "{v:?}");
    let outage = v
        .reasons
        .iter()
        .find(|r| r.rule == Rule::Outage)
        .expect("an outage reason");
    assert_eq!(outage.at, Some([6, 13]), "{outage:?}");
    let alias = v
        .reasons
        .iter()
        .find(|r| r.rule == Rule::Alias)
        .expect("an alias reason");
    assert_eq!(alias.at, Some([0, 5]), "{alias:?}");
    let chars: Vec<char> = post.text.chars().collect();
    let [start, end] = outage.at.expect("span");
    assert_eq!(chars[start..end].iter().collect::<String>(), "is down");
}

/// Every rule that fired is named: handle, target and notice rules show up
/// in the explanation with their spans.
#[test]
fn explain_names_the_new_rules() {
    let matcher = Matcher::embedded().expect("built-in patterns");
    let check = |text: &str, rule: Rule| {
        let post = normalize(RawPost {
            time_us: 0,
            author: "t".into(),
            uri: String::new(),
            key: None,
            text: text.into(),
            langs: vec![],
            tags: vec![],
        });
        let v = matcher.explain(&post);
        let reason = v.reasons.iter().find(|r| r.rule == rule);
        assert!(
            reason.is_some_and(|r| r.at.is_some()),
            "{text:?}: no {rule} reason with a span in {:#?}",
            v.reasons
        );
    };
    check("@AcmeHelp your website won't load", Rule::Handle);
    check("the site is down", Rule::Target);
    check(
        "thanks for reporting, the site should be back up now",
        Rule::Notice,
    );
    check("Blipster is down again", Rule::Name);
}

/// README's list of the rules `check --explain` names is the list the
/// matcher has: a rule added, renamed or removed without the README fails
/// here.
#[test]
fn readme_lists_every_rule_and_no_other() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("`outagewatch check --explain TEXT` names every rule")
        .expect("README names the rules of --explain");
    let end = start
        + readme[start..]
            .find("The JSON form of `check`")
            .expect("the list ends before the JSON form");
    let listed: std::collections::BTreeSet<&str> = readme[start..end]
        .split('`')
        .skip(3) // the command before the list
        .step_by(2)
        .collect();
    let rules: std::collections::BTreeSet<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(listed, rules);
}
